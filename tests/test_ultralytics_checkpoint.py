"""The restricted `.pt` reader: tensors and module records come back, code in a pickle never runs."""

import contextlib
import io
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from tests.conftest import SHARED
from tfyolo.errors import ModelError
from tfyolo.importers.ultralytics_checkpoint import ModuleRecord, read_checkpoint


@contextlib.contextmanager
def fake_torch_names():
    """Module objects named like torch's and Ultralytics', so that pickle writes their global names as a real
    checkpoint does; nothing here is torch."""

    def rebuild_tensor_v2(*args):
        raise AssertionError("only referenced, never called while writing")

    names = {
        "torch": {"HalfStorage": type("HalfStorage", (), {}), "FloatStorage": type("FloatStorage", (), {})},
        "torch._utils": {"_rebuild_tensor_v2": rebuild_tensor_v2},
        "ultralytics.nn.tasks": {"DetectionModel": type("DetectionModel", (), {})},
        "torch.nn.modules.conv": {"Conv2d": type("Conv2d", (), {})},
    }
    # Importing a dotted name needs its parents too (torch.nn, ultralytics, ...).
    for module_name in list(names):
        parts = module_name.split(".")
        for depth in range(1, len(parts)):
            names.setdefault(".".join(parts[:depth]), {})
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for module_name, members in names.items():
            module = types.ModuleType(module_name)
            for member, value in members.items():
                value.__module__, value.__qualname__ = module_name, member
                setattr(module, member, value)
            sys.modules[module_name] = module
        yield {name: sys.modules[name] for name in names}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage as a persistent id, offset, size, stride, ...)."""

    def __init__(self, rebuild, key, offset, size, stride):
        self.rebuild, self.args = rebuild, (key, offset, size, stride)

    def __reduce__(self):
        key, offset, size, stride = self.args
        return self.rebuild, (("storage-marker", key), offset, size, stride, False, {})


def write_checkpoint(path, storages):
    """A checkpoint in torch's zip layout: {'model': DetectionModel record with one Conv2d child, ...}."""
    with fake_torch_names() as modules:
        rebuild = modules["torch._utils"]._rebuild_tensor_v2
        storage_types = {np.float16: modules["torch"].HalfStorage, np.float32: modules["torch"].FloatStorage}
        model = modules["ultralytics.nn.tasks"].DetectionModel()
        conv = modules["torch.nn.modules.conv"].Conv2d()
        # A non-contiguous view at an offset: the transposed 3x2 block of storage 0 starting at element 2.
        conv.__dict__.update(_parameters={"weight": Tensor(rebuild, "0", 2, (2, 3), (1, 2))}, _buffers={}, _modules={})
        model.__dict__.update(
            nc=2, names={0: "a", 1: "b"}, _parameters={}, _buffers={"stride": Tensor(rebuild, "1", 0, (3,), (1,))}
        )
        model.__dict__["_modules"] = {"conv": conv}
        buffer = io.BytesIO()

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "storage-marker":
                    array = storages[obj[1]]
                    return ("storage", storage_types[array.dtype.type], obj[1], "cpu", array.size)
                return None

        Writer(buffer, protocol=2).dump({"model": model, "ema": None, "train_args": {"imgsz": 64}})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tiny/data.pkl", buffer.getvalue())
        archive.writestr("tiny/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"tiny/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())


def test_tensors_and_module_records_come_back_without_torch(tmp_path):
    storage = np.arange(10, dtype=np.float16)
    stride = np.array([8, 16, 32], np.float32)
    write_checkpoint(tmp_path / "tiny.pt", {"0": storage, "1": stride})
    checkpoint = read_checkpoint(tmp_path / "tiny.pt")
    model = checkpoint["model"]
    assert isinstance(model, ModuleRecord) and model.type_name == "ultralytics.nn.tasks.DetectionModel"
    assert model.nc == 2 and model.names == {0: "a", 1: "b"} and checkpoint["train_args"] == {"imgsz": 64}
    state = model.state_dict()
    assert sorted(state) == ["conv.weight", "stride"]
    # Element (r, c) of a view with offset 2 and strides (1, 2) is storage[2 + r + 2c].
    np.testing.assert_array_equal(state["conv.weight"], [[2, 4, 6], [3, 5, 7]])
    assert state["conv.weight"].dtype == np.float16
    np.testing.assert_array_equal(state["stride"], stride)


def test_a_pickle_that_calls_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."  # protocol 0: os.system("touch ...")
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as archive:
        archive.writestr("evil/data.pkl", payload)
    with pytest.raises(ModelError, match="refused to load os.system"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    pickle.loads(payload)  # the oracle: the same bytes, unrestricted, do run the command
    assert marker.exists()


@pytest.mark.parametrize(
    "content, fragment",
    [(b"not a zip at all", "not a zip checkpoint"), (None, "expected one <name>/data.pkl")],
)
def test_files_that_are_not_checkpoints(tmp_path, content, fragment):
    path = tmp_path / "x.pt"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    else:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=fragment):
        read_checkpoint(path)


def test_the_shipped_ultralytics_checkpoint():
    path = SHARED / "weights" / "ultralytics_yolov8n_pennfudan" / "best.pt"
    if not path.is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolov8n_pennfudan beside the project (present in CI)")
    checkpoint = read_checkpoint(path)
    assert checkpoint["ema"] is None  # stripped at the end of training: the weights are in `model`
    model = checkpoint["model"]
    assert model.type_name == "ultralytics.nn.tasks.DetectionModel" and model.names == {0: "person"}
    state = model.state_dict()
    # SOURCE.md: 355 tensors, float16 weights, 3.01 M parameters (BatchNorm statistics are buffers).
    assert len(state) == 355 and state["model.0.conv.weight"].dtype == np.float16
    parameters = sum(
        value.size
        for name, value in state.items()
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert parameters == 3_011_043
    layers = list(model.children()["model"].children().values())
    assert [layer.type for layer in layers][-1] == "ultralytics.nn.modules.head.Detect"
    assert layers[-1].f == [15, 18, 21] and layers[2].type == "ultralytics.nn.modules.block.C2f"
