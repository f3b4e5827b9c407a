"""training/export_onnx.py: the benchmark's ONNX export of a model folder (scripts/bench-vs-ort.sh)."""
import os
import subprocess
import sys
import tempfile
import unittest

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ExportOnnx(unittest.TestCase):
    def test_exports_the_tiny_model_with_a_dynamic_batch_and_touches_nothing_else(self):
        model = os.path.join(ROOT, "tests", "models", "tiny")
        before = sorted(os.listdir(model))
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "unet.onnx")
            subprocess.run([sys.executable, os.path.join(ROOT, "training", "export_onnx.py"), "--model", model, "--out", out],
                           check=True, capture_output=True)
            m = onnx.load(out)
            onnx.checker.check_model(m)
            self.assertEqual([i.name for i in m.graph.input], ["sample", "timestep"])
            self.assertEqual([o.name for o in m.graph.output], ["eps"])
            batch = m.graph.input[0].type.tensor_type.shape.dim[0]
            self.assertEqual(batch.dim_param, "n", "the batch size is left open")
        self.assertEqual(sorted(os.listdir(model)), before, "the model folder is not written")


if __name__ == "__main__":
    unittest.main()
