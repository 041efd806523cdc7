"""The tasks the training loop runs, by name; the registry says which task each model belongs to."""

from mobilenetv2.train.task import Task
from mobilenetv2.train.tasks.classification import ClassificationTask
from mobilenetv2.train.tasks.detection import DetectionTask
from mobilenetv2.train.tasks.segmentation import SegmentationTask

TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "detection": DetectionTask,
    "segmentation": SegmentationTask,
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ValueError(f"no training task {name!r} in this version; known: {', '.join(TASKS)}")
    return TASKS[name]


def task_for_model(model_name: str) -> type[Task]:
    from mobilenetv2.registry import task_of

    return task_class(task_of(model_name))


__all__ = ["TASKS", "ClassificationTask", "DetectionTask", "SegmentationTask", "Task", "task_class", "task_for_model"]
