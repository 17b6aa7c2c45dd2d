"""Which families tfyolo's loss trains: `tfyolo.losses.yolo_loss.YOLOLoss` is YOLOv8's (task-aligned assignment,
DFL and CIoU on a one-to-many head). YOLO26's end-to-end training (a one-to-one head beside it, no DFL, ProgLoss
and STAL) needs a loss of its own; until it exists, training or QAT of a YOLO26 is refused before any work, never
run with a loss that does not fit its head."""


def trains(family):
    """True when tfyolo's loss fits `family`'s heads (`tfyolo.models.model_family.ModelFamily`)."""
    return family.heads == ("one2many",) and family.reg_max is None


def untrained_family_message(name):
    return (
        f"family {name}: tfyolo does not train it yet (its one-to-one head and DFL-free boxes need YOLO26's "
        "end-to-end loss, which is not built); import an Ultralytics checkpoint instead (`tfyolo import best.pt`) "
        "and convert it"
    )
