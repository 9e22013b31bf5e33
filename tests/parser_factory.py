"""Make a tiny stand-in for MediaPipe's multiclass selfie segmenter: a real TFLite model, built here.

One 1x1 convolution from RGB (scaled to 0-1 by the model's metadata) to 6 class logits, with the
segmenter metadata (input scaling, labels, softmax) MediaPipe's ``ImageSegmenter`` reads, so the
parser code runs exactly as it would on the real 16 MB model. ``logits[k] = weights[k] . rgb + bias[k]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceswap_core.faces.parser import CLASSES


def make_segmenter(
    path: Path, weights: Sequence[Sequence[float]], bias: Sequence[float], *, classes: int = len(CLASSES)
) -> Path:
    """Write the stand-in to ``path``: ``weights`` is ``classes`` x 3 (R, G, B), ``bias`` has ``classes``."""
    import flatbuffers
    from mediapipe.tasks.metadata import schema_py_generated as tflite
    from mediapipe.tasks.python.metadata.metadata_writers import image_segmenter, metadata_writer

    side = 64
    model = tflite.ModelT()
    model.version = 3
    code = tflite.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tflite.BuiltinOperator.CONV_2D
    code.version = 1
    model.operatorCodes = [code]
    arrays = (None, np.asarray(weights, np.float32).reshape(classes, 1, 1, 3), np.asarray(bias, np.float32), None)
    model.buffers = []
    for array in arrays:
        buffer = tflite.BufferT()
        if array is not None:
            buffer.data = list(array.tobytes())
        model.buffers.append(buffer)
    shapes = ([1, side, side, 3], [classes, 1, 1, 3], [classes], [1, side, side, classes])
    graph = tflite.SubGraphT()
    graph.tensors = []
    for index, (name, shape) in enumerate(zip((b"image", b"filter", b"bias", b"logits"), shapes, strict=True)):
        tensor = tflite.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, shape, tflite.TensorType.FLOAT32, index
        graph.tensors.append(tensor)
    graph.inputs, graph.outputs = [0], [3]
    conv = tflite.OperatorT()
    conv.opcodeIndex, conv.inputs, conv.outputs = 0, [0, 1, 2], [3]
    conv.builtinOptionsType = tflite.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = tflite.Conv2DOptionsT()
    conv.builtinOptions.padding = tflite.Padding.SAME
    conv.builtinOptions.strideW = conv.builtinOptions.strideH = 1
    conv.builtinOptions.dilationWFactor = conv.builtinOptions.dilationHFactor = 1
    graph.operators = [conv]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    labels = metadata_writer.Labels().add([*CLASSES, *(f"extra {n}" for n in range(classes - len(CLASSES)))][:classes])
    writer = image_segmenter.MetadataWriter.create(
        bytearray(builder.Output()), [0.0], [255.0], labels=labels, activation=image_segmenter.Activation.SOFTMAX
    )
    path.write_bytes(writer.populate()[0])
    return path


def constant_segmenter(path: Path, label: str) -> Path:
    """A stand-in that calls every pixel ``label`` (one of :data:`CLASSES`)."""
    bias = [0.0] * len(CLASSES)
    bias[CLASSES.index(label)] = 20.0
    return make_segmenter(path, [[0.0, 0.0, 0.0]] * len(CLASSES), bias)
