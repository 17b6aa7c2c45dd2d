"""An edge bundle written for a test, and its reference_infer.py loaded as a module (what a device team runs)."""

import importlib.util


def bundle_with_reference(model, images, folder):
    """Writes the bundle of `model` (.tflite) with golden `images` into `folder`; returns its reference_infer module."""
    from tfyolo.bundle import make_bundle

    for relative, data in make_bundle(model, images).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    spec = importlib.util.spec_from_file_location("reference_infer", folder / "reference_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
