from cifar_synth.cli import main

main()
