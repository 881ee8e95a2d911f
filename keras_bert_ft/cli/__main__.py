"""`python -m keras_bert_ft.cli`: the `keras-bert-ft` command."""

import sys

from keras_bert_ft.cli.app import main

sys.exit(main())
