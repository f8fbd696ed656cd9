# The video decoder of every MorphMLP recognition config: ONE switch.
#
#   decoder = 'decord' (default) | 'pyav' | 'opencv'
#
# Flip it for one run with an environment variable (mmengine replaces
# ``{{$NAME:default}}`` when it reads the config):
#
#   MORPHMLP_DECODER=pyav python tools/train.py configs/recognition/<cfg>.py
#
# or for good by editing the default below. ``--cfg-options`` cannot do it:
# it edits the finished config after this file's Python has built the
# pipelines.
#
# Every pipeline of configs/recognition/ uses ``decoder_init`` and
# ``decoder_decode`` from here (the *Init and *Decode transforms of mmaction2
# take the same arguments, so nothing else changes).
#
# Repeated augmentation: the official recipe decodes each training video once
# and augments it twice (AUG.NUM_SAMPLE 2). mmaction2 does this with
# RepeatAugDataset, which only works with decord; RobustRepeatAugDataset
# (morphmlp_mm) is that class with RobustVideoDataset's clear errors and skip
# of unreadable videos. With PyAV or OpenCV the training set is a
# RobustVideoDataset and ``train_videos_per_gpu`` doubles, so a step still
# sees the same number of clips (16 per GPU).
decoder = '{{$MORPHMLP_DECODER:decord}}'.strip().lower()

_decoders = dict(
    decord=(dict(type='DecordInit', io_backend='disk'),
            dict(type='DecordDecode')),
    # PyAVInitCounted (morphmlp_mm): mmaction2's PyAVInit reads 0 frames from
    # WebM files (all of SSV2); this one counts them.
    pyav=(dict(type='PyAVInitCounted', io_backend='disk'),
          dict(type='PyAVDecode')),
    opencv=(dict(type='OpenCVInit', io_backend='disk'),
            dict(type='OpenCVDecode')),
)
if decoder not in _decoders:
    raise ValueError(f'decoder={decoder!r} (MORPHMLP_DECODER) is not '
                     f'supported; choose one of {sorted(_decoders)}')
decoder_init, decoder_decode = _decoders[decoder]
del _decoders

# Clips per GPU and training step (the official 64 videos x 2 samples over
# 8 GPUs).
train_clips_per_gpu = 16
if decoder == 'decord':
    num_repeats = 2
    train_dataset_type = 'RobustRepeatAugDataset'
    train_dataset_extra = dict(num_repeats=num_repeats, sample_once=True)
    train_collate_fn = dict(type='repeat_pseudo_collate')
else:
    num_repeats = 1
    train_dataset_type = 'RobustVideoDataset'
    train_dataset_extra = dict()
    train_collate_fn = dict(type='pseudo_collate')
train_videos_per_gpu = train_clips_per_gpu // num_repeats
