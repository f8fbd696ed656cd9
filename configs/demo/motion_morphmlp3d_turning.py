# Stage 1 of the motion job (tools/demo/motion_demo.py): the model of motion_morphmlp3d.py trained for 2 epochs on
# the clips of "turning something clockwise / counterclockwise" alone; stage 2 (motion_morphmlp3d.py) starts its
# backbone from this checkpoint. Why: with all 10 classes from the start the tiny model never learns the sense of a
# turn (that pair stays at chance, 87.7% top-1 overall after 15 epochs), while on the turning clips alone it learns
# it within an epoch, and the feature survives the training on all classes. A curriculum inside one run
# (ClassCurriculumSampler stages, then all classes) made training collapse at the switch, also with a re-warmup of
# the learning rate; a fresh head and optimizer in a second run do not.
#
#   python tools/train.py configs/demo/motion_morphmlp3d_turning.py   # -> work_dirs/motion_morphmlp3d_turning/
#   python tools/train.py configs/demo/motion_morphmlp3d.py
_base_ = ['./motion_morphmlp3d.py']

turning_labels = [4, 5]  # class_groups.json of the generator's default classes
max_epochs = 2
model = dict(backbone=dict(init_cfg=None))  # this stage starts from scratch
# Every epoch has the length of a whole-dataset epoch (250 iterations) but draws only the turning clips.
train_dataloader = dict(
    sampler=dict(type='ClassCurriculumSampler', shuffle=True,
                 curriculum=[dict(epochs=max_epochs, labels=turning_labels)]))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
# Validation covers all 10 classes; only the turning pair (a fifth of the clips) can be right here.
default_hooks = dict(checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
