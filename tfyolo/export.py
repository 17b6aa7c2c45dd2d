"""SavedModel export: the raw detector (no NMS in the graph) behind a `serving_default` signature."""

from tfyolo.compat import tf
from tfyolo.quantization.converter import INPUT_NAME


class ExportModule(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        size = int(model.input_shape[1])

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=INPUT_NAME)])
        def serve(images):
            return self.model(images, training=False)

        self.serve = serve


def export_saved_model(model, directory):
    """Writes `model` as a SavedModel whose serving signature maps "images" to the two raw outputs."""
    module = ExportModule(model)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory
