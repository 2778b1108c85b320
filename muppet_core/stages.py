"""The names of the pipeline's stages: each is the first folder of its artifacts' paths in the store
(``<store>/<stage>/<key>/``), so one name here is what every layer writes and reads."""

DATA = "data"
PREFINETUNE = "prefinetune"
FINETUNE = "finetune"
FINETUNE_FAILED = "finetune-failed"  # a fine-tune's failure record, under failures/finetune/
LEADERBOARD = "leaderboard"
