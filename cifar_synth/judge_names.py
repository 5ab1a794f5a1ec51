"""The judges' names, importable without TensorFlow: the CLI, the evaluator, the cache and the judges share them."""

CNN = "cnn"  # the bundled CNN; its baseline cache entries sit at the top of the cache directory
RESNET = "resnet"  # the second judge (cifar_synth.judges)
JUDGE_NAMES = (CNN, RESNET)  # every judge, in report order: the bundled CNN first (CAS and the feature figures are its)
