"""Runners: one `predict(batch) -> (boxes, scores)` for every kind of model, decoding with shared code."""

from tfyolo.ops.decode import decode_predictions
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT


class KerasRunner:
    """Runs an in-memory Keras detector (float or QAT) in inference mode.

    Args:
        model: keras.Model with the `box_distribution` and `class_logits` outputs.
        reg_max: int. DFL bins of the model.
    """

    def __init__(self, model, reg_max=16, strides=(8, 16, 32)):
        from tfyolo.compat import tf

        self.model = model
        self.reg_max = reg_max
        self.strides = tuple(strides)
        self.input_size = int(model.input_shape[1])
        self.num_classes = int(model.output_shape[CLASS_OUTPUT][-1])
        self._forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)

    def predict_raw(self, batch):
        outputs = self._forward(batch)
        return {BOX_OUTPUT: outputs[BOX_OUTPUT].numpy(), CLASS_OUTPUT: outputs[CLASS_OUTPUT].numpy()}

    def predict(self, batch):
        raw = self.predict_raw(batch)
        return decode_predictions(raw[BOX_OUTPUT], raw[CLASS_OUTPUT], self.input_size, self.strides, self.reg_max)
