"""Ultralytics-layout checkpoints written by the tests themselves, with random weights, so the weight mapping is
exercised in a bare clone (no ../shared, no PyTorch).

The module tree is built from Ultralytics' own definitions (`cfg/models/*.yaml`, `nn/modules/block.py`, `head.py`,
as read: channel arithmetic, module and child names), independently of tfyolo's builders: the test that imports
such a file checks tfyolo's mapping against this second reading of the same sources. Pickled the way torch does
(`_rebuild_tensor_v2` with storages as persistent ids), under class names that the restricted unpickler allows.
"""

import contextlib
import io
import math
import pickle
import sys
import types
import zipfile

import numpy as np

TORCH_CLASSES = {
    "torch": ["HalfStorage", "FloatStorage"],
    "torch._utils": [],
    "torch.nn.modules.conv": ["Conv2d", "ConvTranspose2d"],
    "torch.nn.modules.batchnorm": ["BatchNorm2d"],
    "torch.nn.modules.activation": ["SiLU"],
    "torch.nn.modules.linear": ["Identity"],
    "torch.nn.modules.container": ["Sequential", "ModuleList"],
    "torch.nn.modules.pooling": ["MaxPool2d"],
    "torch.nn.modules.upsampling": ["Upsample"],
    "ultralytics.nn.tasks": ["DetectionModel", "SegmentationModel"],
    "ultralytics.nn.modules.conv": ["Conv", "DWConv", "Concat"],
    "ultralytics.nn.modules.block": [
        "C2f",
        "C3k2",
        "C3k",
        "Bottleneck",
        "SPPF",
        "C2PSA",
        "PSABlock",
        "Attention",
        "DFL",
        "Proto",
        "Proto26",
    ],
    "ultralytics.nn.modules.head": ["Detect", "Segment", "Segment26"],
}


class Node:
    """One module of the tree: its Ultralytics / torch class, parameters, buffers, children, extra attributes."""

    def __init__(self, kind, children=None, parameters=None, buffers=None, **attributes):
        self.kind, self.children = kind, dict(children or {})
        self.parameters, self.buffers, self.attributes = dict(parameters or {}), dict(buffers or {}), attributes


def make_divisible(value, divisor=8):
    return int(math.ceil(value / divisor) * divisor)


class Builder:
    """Ultralytics' module definitions, tensors drawn from `rng`."""

    def __init__(self, rng):
        self.rng = rng

    def weight(self, *shape):
        return (self.rng.standard_normal(shape) * 0.1).astype(np.float16)

    def conv(self, c1, c2, k=1, act=True, groups=1, kind="Conv"):
        batch_norm = Node(
            "BatchNorm2d",
            parameters={"weight": 1 + self.weight(c2), "bias": self.weight(c2)},
            buffers={
                "running_mean": self.weight(c2),
                "running_var": (1 + np.abs(self.weight(c2))).astype(np.float16),
                "num_batches_tracked": np.array([7], np.float32),
            },
            eps=1e-3,
        )
        return Node(
            kind,
            {
                "conv": Node("Conv2d", parameters={"weight": self.weight(c2, c1 // groups, k, k)}),
                "bn": batch_norm,
                "act": Node("SiLU" if act else "Identity"),
            },
        )

    def bottleneck(self, c1, c2, e=0.5):
        hidden = int(c2 * e)
        return Node("Bottleneck", {"cv1": self.conv(c1, hidden, 3), "cv2": self.conv(hidden, c2, 3)})

    def c2f(self, c1, c2, n):
        c = int(c2 * 0.5)
        inner = Node("ModuleList", {str(i): self.bottleneck(c, c, 1.0) for i in range(n)})
        return Node("C2f", {"cv1": self.conv(c1, 2 * c, 1), "cv2": self.conv((2 + n) * c, c2, 1), "m": inner})

    def c3k(self, c1, c2, n=2):
        c = int(c2 * 0.5)
        inner = Node("Sequential", {str(i): self.bottleneck(c, c, 1.0) for i in range(n)})
        children = {"cv1": self.conv(c1, c, 1), "cv2": self.conv(c1, c, 1), "cv3": self.conv(2 * c, c2, 1)}
        return Node("C3k", dict(children, m=inner))

    def c3k2(self, c1, c2, n, c3k, e=0.5, attn=False):
        c = int(c2 * e)

        def inner():
            if attn:  # YOLO26: Sequential(Bottleneck(c, c), PSABlock(c, 0.5, max(c // 64, 1)))
                return Node("Sequential", {"0": self.bottleneck(c, c), "1": self.psa_block(c)})
            return self.c3k(c, c) if c3k else self.bottleneck(c, c)

        blocks = {str(i): inner() for i in range(n)}
        children = {"cv1": self.conv(c1, 2 * c, 1), "cv2": self.conv((2 + n) * c, c2, 1)}
        return Node("C3k2", dict(children, m=Node("ModuleList", blocks)))

    def sppf(self, c1, c2, linear_cv1=False):
        c = c1 // 2
        children = {"cv1": self.conv(c1, c, 1, act=not linear_cv1), "cv2": self.conv(4 * c, c2, 1)}
        return Node("SPPF", dict(children, m=Node("MaxPool2d")), add=linear_cv1 and c1 == c2)

    def attention(self, dim, heads):
        key_dim = int(dim // heads * 0.5)
        children = {
            "qkv": self.conv(dim, dim + 2 * heads * key_dim, 1, act=False),
            "proj": self.conv(dim, dim, 1, act=False),
            "pe": self.conv(dim, dim, 3, act=False, groups=dim),
        }
        return Node("Attention", children, num_heads=heads, key_dim=key_dim, head_dim=dim // heads)

    def psa_block(self, c):
        ffn = Node("Sequential", {"0": self.conv(c, 2 * c, 1), "1": self.conv(2 * c, c, 1, act=False)})
        return Node("PSABlock", {"attn": self.attention(c, max(c // 64, 1)), "ffn": ffn})

    def c2psa(self, c1, n):
        c = int(c1 * 0.5)
        blocks = {str(i): self.psa_block(c) for i in range(n)}
        children = {"cv1": self.conv(c1, 2 * c, 1), "cv2": self.conv(2 * c, c1, 1)}
        return Node("C2PSA", dict(children, m=Node("Sequential", blocks)))

    def prediction(self, c_in, c_out, kind="Conv2d", k=1):
        """A biased nn.Conv2d; a ConvTranspose2d's weight is (in, out, k, k)."""
        shape = (c_in, c_out, k, k) if kind == "ConvTranspose2d" else (c_out, c_in, k, k)
        return Node(kind, parameters={"weight": self.weight(*shape), "bias": self.weight(c_out)})

    def detect(self, nc, channels, legacy, reg_max=16, end2end=False):
        c2, c3 = max(16, channels[0] // 4, 4 * reg_max), max(channels[0], min(nc, 100))
        prediction = self.prediction

        boxes, classes = {}, {}
        for level, x in enumerate(channels):
            boxes[str(level)] = Node(
                "Sequential", {"0": self.conv(x, c2, 3), "1": self.conv(c2, c2, 3), "2": prediction(c2, 4 * reg_max)}
            )
            if legacy:
                first, second = self.conv(x, c3, 3), self.conv(c3, c3, 3)
            else:
                first = Node("Sequential", {"0": self.conv(x, x, 3, groups=x, kind="DWConv"), "1": self.conv(x, c3, 1)})
                second = Node(
                    "Sequential", {"0": self.conv(c3, c3, 3, groups=c3, kind="DWConv"), "1": self.conv(c3, c3, 1)}
                )
            classes[str(level)] = Node("Sequential", {"0": first, "1": second, "2": prediction(c3, nc)})
        if reg_max == 1:  # YOLO26: no DFL, an Identity
            dfl = Node("Identity")
        else:
            weight = np.arange(reg_max, dtype=np.float16).reshape(1, reg_max, 1, 1)
            dfl = Node("DFL", {"conv": Node("Conv2d", parameters={"weight": weight})})
        children = {"cv2": Node("ModuleList", boxes), "cv3": Node("ModuleList", classes), "dfl": dfl}
        if end2end:  # copy.deepcopy of cv2 / cv3 in Ultralytics: the same shapes, here weights of their own
            one2one = self.detect(nc, channels, legacy, reg_max)
            children.update(one2one_cv2=one2one.children["cv2"], one2one_cv3=one2one.children["cv3"])
        return Node("Detect", children)

    def proto(self, c1, c_, c2):
        """Proto(c1, c_, c2): Conv k3, ConvTranspose2d(c_, c_, 2, 2, 0, bias=True), Conv k3, Conv k1."""
        upsample = self.prediction(c_, c_, "ConvTranspose2d", k=2)
        return {
            "cv1": self.conv(c1, c_, 3),
            "upsample": upsample,
            "cv2": self.conv(c_, c_, 3),
            "cv3": self.conv(c_, c2),
        }

    def segment(self, nc, channels, legacy, npr, reg_max=16, end2end=False, nm=32):
        """Segment(nc, nm, npr) over Detect: cv4 per level (and its deep copy one2one_cv4), Proto on P3; with end2end
        (YOLO26) Segment26, whose Proto26 first adds 1x1 Convs of P4 / P5 to P3 (feat_refine), then feat_fuse, and
        holds the training-only semseg."""
        head = self.detect(nc, channels, legacy, reg_max, end2end)
        c4 = max(channels[0] // 4, nm)

        def cv4():
            levels = {
                str(i): Node(
                    "Sequential", {"0": self.conv(x, c4, 3), "1": self.conv(c4, c4, 3), "2": self.prediction(c4, nm)}
                )
                for i, x in enumerate(channels)
            }
            return Node("ModuleList", levels)

        head.children["cv4"] = cv4()
        if end2end:
            head.children["one2one_cv4"] = cv4()
            children = self.proto(npr, npr, nm)
            refine = {str(i): self.conv(x, channels[0], 1) for i, x in enumerate(channels[1:])}
            semseg = {"0": self.conv(channels[0], npr, 3), "1": self.conv(npr, npr, 3), "2": self.prediction(npr, nc)}
            children.update(
                feat_refine=Node("ModuleList", refine),
                feat_fuse=self.conv(channels[0], npr, 3),
                semseg=Node("Sequential", semseg),
            )
            head.children["proto"] = Node("Proto26", children)
        else:
            head.children["proto"] = Node("Proto", self.proto(channels[0], npr, nm))
        head.kind = "Segment26" if end2end else "Segment"
        return head


# (depth, width, max_channels) of Ultralytics' yaml scales
YOLOV8_SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)}
YOLO11_SCALES = {"n": (0.50, 0.25, 1024), "s": (0.50, 0.50, 1024), "m": (0.50, 1.00, 512)}


def yolo11_layers(builder, scale, nc, yolo26=False, segment=False):
    """cfg/models/11/yolo11.yaml, or with `yolo26` cfg/models/26/yolo26.yaml: the same rows except SPPF(1024, 5, 3,
    True) (linear cv1, residual), every neck C3k2 with c3k True, the last one C3k2(1024, True, 0.5, True) once
    (attention), and Detect(reg_max 1, end2end)."""
    depth, width, max_channels = YOLO11_SCALES[scale]
    ch = lambda c: make_divisible(min(c, max_channels) * width)  # noqa: E731
    reps = lambda n: max(round(n * depth), 1) if n > 1 else n  # noqa: E731
    c3k = scale in ("m", "l", "x")
    neck_c3k = c3k or yolo26
    layers = [
        builder.conv(3, ch(64), 3),
        builder.conv(ch(64), ch(128), 3),
        builder.c3k2(ch(128), ch(256), reps(2), c3k, 0.25),
        builder.conv(ch(256), ch(256), 3),
        builder.c3k2(ch(256), ch(512), reps(2), c3k, 0.25),
        builder.conv(ch(512), ch(512), 3),
        builder.c3k2(ch(512), ch(512), reps(2), True),
        builder.conv(ch(512), ch(1024), 3),
        builder.c3k2(ch(1024), ch(1024), reps(2), True),
        builder.sppf(ch(1024), ch(1024), linear_cv1=yolo26),
        builder.c2psa(ch(1024), reps(2)),
        Node("Upsample"),
        Node("Concat"),
        builder.c3k2(ch(1024) + ch(512), ch(512), reps(2), neck_c3k),
        Node("Upsample"),
        Node("Concat"),
        builder.c3k2(ch(512) + ch(512), ch(256), reps(2), neck_c3k),
        builder.conv(ch(256), ch(256), 3),
        Node("Concat"),
        builder.c3k2(ch(256) + ch(512), ch(512), reps(2), neck_c3k),
        builder.conv(ch(512), ch(512), 3),
        Node("Concat"),
        builder.c3k2(ch(512) + ch(1024), ch(1024), reps(1 if yolo26 else 2), True, attn=yolo26),
        head(builder, nc, (ch(256), ch(512), ch(1024)), ch(256), segment, False, 1 if yolo26 else 16, yolo26),
    ]
    return layers


def head(builder, nc, channels, npr, segment, legacy, reg_max=16, end2end=False):
    """The yaml's last row: Detect, or Segment[nc, 32, 256] whose npr parse_model scales as a width (`npr` here)."""
    if segment:
        return builder.segment(nc, channels, legacy, npr, reg_max, end2end)
    return builder.detect(nc, channels, legacy, reg_max, end2end)


def yolov8_layers(builder, scale, nc, segment=False):
    depth, width, max_channels = YOLOV8_SCALES[scale]
    ch = lambda c: make_divisible(min(c, max_channels) * width)  # noqa: E731
    reps = lambda n: max(round(n * depth), 1) if n > 1 else n  # noqa: E731
    return [
        builder.conv(3, ch(64), 3),
        builder.conv(ch(64), ch(128), 3),
        builder.c2f(ch(128), ch(128), reps(3)),
        builder.conv(ch(128), ch(256), 3),
        builder.c2f(ch(256), ch(256), reps(6)),
        builder.conv(ch(256), ch(512), 3),
        builder.c2f(ch(512), ch(512), reps(6)),
        builder.conv(ch(512), ch(1024), 3),
        builder.c2f(ch(1024), ch(1024), reps(3)),
        builder.sppf(ch(1024), ch(1024)),
        Node("Upsample"),
        Node("Concat"),
        builder.c2f(ch(1024) + ch(512), ch(512), reps(3)),
        Node("Upsample"),
        Node("Concat"),
        builder.c2f(ch(512) + ch(256), ch(256), reps(3)),
        builder.conv(ch(256), ch(256), 3),
        Node("Concat"),
        builder.c2f(ch(256) + ch(512), ch(512), reps(3)),
        builder.conv(ch(512), ch(512), 3),
        Node("Concat"),
        builder.c2f(ch(512) + ch(1024), ch(1024), reps(3)),
        head(builder, nc, (ch(256), ch(512), ch(1024)), ch(256), segment, legacy=True),
    ]


def yolo26_layers(builder, scale, nc, segment=False):
    return yolo11_layers(builder, scale, nc, yolo26=True, segment=segment)


FAMILY_LAYERS = {"yolov8": yolov8_layers, "yolo11": yolo11_layers, "yolo26": yolo26_layers}


@contextlib.contextmanager
def _fake_classes():
    saved = {}
    classes = {}
    modules = set(TORCH_CLASSES)
    for name in list(modules):
        parts = name.split(".")
        modules.update(".".join(parts[:depth]) for depth in range(1, len(parts)))
    for name in modules:
        saved[name] = sys.modules.get(name)
        sys.modules[name] = types.ModuleType(name)
    try:
        for module_name, members in TORCH_CLASSES.items():
            for member in members:
                cls = type(member, (), {})
                cls.__module__, cls.__qualname__ = module_name, member
                setattr(sys.modules[module_name], member, cls)
                classes[member] = cls

        def rebuild_tensor_v2(*args):
            raise AssertionError("only referenced, never called while writing")

        rebuild_tensor_v2.__module__, rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
        sys.modules["torch._utils"]._rebuild_tensor_v2 = rebuild_tensor_v2
        yield classes, rebuild_tensor_v2
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Tensor:
    def __init__(self, rebuild, key, array):
        self.rebuild, self.key, self.array = rebuild, key, array

    def __reduce__(self):
        size = tuple(self.array.shape)
        stride = tuple(int(np.prod(size[i + 1 :])) for i in range(len(size)))
        return self.rebuild, (("storage-marker", self.key), 0, size, stride, False, {})


def write_ultralytics_checkpoint(path, family, scale="n", num_classes=2, seed=0, imgsz=64, task="detect"):
    """Writes a `family` checkpoint (random weights) at `path`, a detection or ("segment") a segmentation model;
    returns its state dict ({name: float16 array})."""
    builder = Builder(np.random.default_rng(seed))
    layers = FAMILY_LAYERS[family](builder, scale, num_classes, segment=task == "segment")
    storages, state = {}, {}
    with _fake_classes() as (classes, rebuild):

        def instantiate(node, prefix, index=None):
            obj = classes[node.kind]()
            parameters, buffers = {}, {}
            for source, target in ((node.parameters, parameters), (node.buffers, buffers)):
                for name, array in source.items():
                    key = str(len(storages))
                    storages[key] = array
                    state[f"{prefix}.{name}"] = array
                    target[name] = _Tensor(rebuild, key, array)
            children = {name: instantiate(child, f"{prefix}.{name}") for name, child in node.children.items()}
            obj.__dict__.update(_parameters=parameters, _buffers=buffers, _modules=children, **node.attributes)
            if index is not None:
                full = {
                    "Upsample": "torch.nn.modules.upsampling.Upsample",
                    "Concat": "ultralytics.nn.modules.conv.Concat",
                }.get(node.kind)
                obj.__dict__.update(i=index, f=-1, type=full or f"ultralytics.nn.modules.{node.kind}")
            return obj

        model = classes["SegmentationModel" if task == "segment" else "DetectionModel"]()
        sequence = classes["Sequential"]()
        sequence.__dict__.update(
            _parameters={},
            _buffers={},
            _modules={str(i): instantiate(layer, f"model.{i}", i) for i, layer in enumerate(layers)},
        )
        names = {index: f"class{index}" for index in range(num_classes)}
        model.__dict__.update(_parameters={}, _buffers={}, _modules={"model": sequence}, names=names, nc=num_classes)
        buffer = io.BytesIO()

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "storage-marker":
                    array = storages[obj[1]]
                    kind = classes["HalfStorage"] if array.dtype == np.float16 else classes["FloatStorage"]
                    return ("storage", kind, obj[1], "cpu", array.size)
                return None

        checkpoint = {"model": model, "ema": None, "train_args": {"imgsz": imgsz}, "version": "8.4.190"}
        Writer(buffer, protocol=2).dump(checkpoint)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("best/data.pkl", buffer.getvalue())
        archive.writestr("best/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"best/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
    return state
