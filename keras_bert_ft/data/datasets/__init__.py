"""The built-in data sets, one module each; importing this package registers them.

Each module holds one data set's parser and its `SPEC` (a `registry.DatasetSpec`).
The dependency is one-way: these modules import `keras_bert_ft.data.registry`
(the mechanism: lookup, cache, download, `load_dataset`), never the reverse;
`keras_bert_ft.data` imports this package, so the registry is full once
`keras_bert_ft.data` (or anything below it) is imported.
"""

from keras_bert_ft.data.datasets import goemotions, imdb, mrpc, sms_spam, snli, sst2
from keras_bert_ft.data.registry import DatasetSpec, register_dataset

BUILTIN: tuple[DatasetSpec, ...] = tuple(
    m.SPEC for m in (sst2, sms_spam, snli, mrpc, imdb, goemotions)
)

for _spec in BUILTIN:
    register_dataset(_spec)
