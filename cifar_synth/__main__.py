from cifar_synth.cli import main

# Guarded: the processes of `train --parallel` (multiprocessing, spawn) import this module again.
if __name__ == "__main__":
    main()
