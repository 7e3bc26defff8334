"""Fresh-process client of an exported SavedModel, run by test_saved_model.py.

Loads the export with ``tf.saved_model.load`` only (no liverseg import) and
feeds each array of an ``.npz`` file, keyed ``SIGNATURE.CASE``, to that
signature. Writes the outputs (``SIGNATURE.CASE.OUTPUT`` in an ``.npz``)
and the errors raised (JSON: type and message per key).

Usage: python serving_client.py EXPORT_DIR INPUTS.npz OUTPUTS.npz RESULT.json
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def main(export_dir, inputs_path, outputs_path, result_path):
    loaded = tf.saved_model.load(export_dir)
    input_names = {
        key: list(fn.structured_input_signature[1]) for key, fn in loaded.signatures.items()
    }
    outputs, errors = {}, {}
    with np.load(inputs_path, allow_pickle=False) as inputs:
        for key in inputs.files:
            signature = key.split(".")[0]
            function = loaded.signatures[signature]
            (input_name,) = input_names[signature]
            try:
                result = function(**{input_name: tf.constant(inputs[key])})
            except Exception as err:  # recorded for the test to judge
                errors[key] = {"type": type(err).__name__, "message": str(err)}
                continue
            for name, value in result.items():
                outputs[f"{key}.{name}"] = value.numpy()
    np.savez(outputs_path, **outputs)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump({"input_names": input_names, "errors": errors}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
