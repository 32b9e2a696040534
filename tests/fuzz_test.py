"""The fuzzer's fixed-seed sample, its regression corpus, and its own harness.

`make fuzz` runs the full campaign (python/fuzz/, `python -m fuzz`); this
suite runs a small, derandomised sample of it on every `make test`: a few
hundred calls through TensorFlow, a thousand through the C ABI (each call
one of the three ops: filter gradient, forward, input gradient), every spec of
tests/fuzz_corpus.json (past findings and TensorFlow's known crashers) on
both, and checks that the harness itself reports a crash, a hang and a wrong
answer with a reproducer.
"""

import json
import os
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

import fuzz
import tolerance

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "fuzz_corpus.json")
# Fixed seeds: the sample is the same on every run.
TF_SAMPLE = 300
CABI_SAMPLE = 1000
SEED = 20240


def _spec(**changes):
  spec = dict(dtype="float32", dy_dtype="float32", input=[1, 5, 5, 2],
              filter_sizes=[3, 3, 2, 1], out_backprop=[1, 5, 5, 2],
              strides=[1, 1, 1, 1], padding="SAME", data_format="NHWC",
              dilations=[1, 1, 1, 1], sizes_dtype="int32", values="small",
              seed=1)
  spec.update(changes)
  return spec


class SampleTest(parameterized.TestCase):
  """The fixed-seed sample of `make fuzz`."""

  def _fuzz(self, backend, cases):
    log = []
    with tempfile.TemporaryDirectory() as work_dir:
      report = fuzz.fuzz(backend, cases, per_child=cases, seed=SEED,
                         timeout=600, work_dir=work_dir, log=log.append)
    self.assertTrue(report.ok, "\n".join(log))
    self.assertEqual(report.stats["cases"], cases)
    # The sample reaches both outcomes and every validation stage.
    self.assertGreater(report.stats["ok"], cases // 10)
    self.assertGreater(report.stats["error"], cases // 10)
    # Every op is drawn (the op is chosen per case).
    for op in ("filter_grad", "forward", "input_grad"):
      self.assertGreater(report.stats["op:" + op], cases // 10, op)
    return report

  def test_tensorflow_sample(self):
    report = self._fuzz("tf", TF_SAMPLE)
    for stage in ("python", "attrs", "geometry"):
      self.assertGreater(report.stats["stage:" + stage], 0, stage)

  def test_c_abi_sample(self):
    report = self._fuzz("cabi", CABI_SAMPLE)
    for stage in ("cabi", "attrs", "geometry"):
      self.assertGreater(report.stats["stage:" + stage], 0, stage)

  @parameterized.parameters("tf", "cabi")
  def test_corpus(self, backend):
    rc, stdout, stderr = fuzz._run(  # pylint: disable=protected-access
        fuzz._child_cmd(["--replay", CORPUS, "--backend", backend]),  # pylint: disable=protected-access
        timeout=600)
    self.assertEqual(rc, 0, stderr[-5000:])
    stats = fuzz._result(stdout)  # pylint: disable=protected-access
    specs = fuzz.read_specs(CORPUS)
    expected = sum(backend in s.get("backends", [backend]) for s in specs)
    self.assertEqual(stats["cases"], expected)


class ModelTest(parameterized.TestCase):
  """`fuzz.expect`, the contract the fuzzer holds dwop to, on known cases."""

  def test_valid(self):
    ex = fuzz.expect(_spec(), "tf")
    self.assertTrue(ex.ok, ex.reason)
    self.assertEqual(ex.geometry["pad_top"], 1)

  @parameterized.named_parameters(
      ("input_rank", dict(input=[5, 5, 2]), "input"),
      ("filter_sizes_length", dict(filter_sizes=[3, 3, 2]), "filter_sizes"),
      ("filter_sizes_negative", dict(filter_sizes=[3, 3, 2, -1]),
       "filter_sizes"),
      ("out_backprop_rows", dict(out_backprop=[1, 4, 5, 2]), "out_backprop"),
      ("stride_zero", dict(strides=[1, 0, 1, 1]), "strides"),
      ("depth_dilation", dict(dilations=[1, 1, 1, 2]), "dilations"),
      ("explicit_string", dict(padding="EXPLICIT"), "padding"),
      ("depth_padding", dict(padding=[[0, 0], [1, 1], [1, 1], [0, 1]]),
       "explicit_paddings"),
      ("data_format", dict(data_format="NCWH"), "data_format"),
      ("dtype_mismatch", dict(dy_dtype="float64"), "out_backprop"),
      ("sizes_dtype", dict(sizes_dtype="float32"), "Tsizes"),
  )
  def test_faults_name_arguments(self, changes, keyword):
    ex = fuzz.expect(_spec(**changes), "tf")
    self.assertFalse(ex.ok, changes)
    self.assertIn(keyword, ex.keywords, changes)

  def test_overflows(self):
    big = 2**40
    # in_depth * depth_multiplier wraps to 0 in int64.
    ex = fuzz.expect(_spec(input=[0, 5, 5, big], filter_sizes=[0, 0, big, big],
                           out_backprop=[0, 6, 6, 0], padding="VALID"), "cabi")
    self.assertFalse(ex.ok)
    ex = fuzz.expect(_spec(dilations=[1, 2**62, 1, 1]), "tf")
    self.assertFalse(ex.ok)
    ex = fuzz.expect(_spec(filter_sizes=[2**14, 2**14 + 1, 2, 1]), "tf")
    self.assertFalse(ex.ok)

  def test_export_carries_the_tolerance(self):
    # The sanitizer driver reads its tolerance from the export, computed by
    # python/tolerance.py: two results, inputs in [-1, 1], 1*5*5 terms.
    fields = dict(f.split("=", 1) for f in fuzz.export_line(
        _spec(dtype="float16", dy_dtype="float16")).split())
    self.assertEqual(fields["valid"], "1")
    self.assertEqual(float(fields["atol"]), tolerance.bound(
        "float16", 1.0, 1.0, 25, tolerance.TWO_RESULTS))
    fields = dict(f.split("=", 1) for f in fuzz.export_line(
        _spec(strides=[1, 0, 1, 1])).split())
    self.assertEqual((fields["valid"], fields["atol"]), ("0", "0"))

  @parameterized.named_parameters(
      ("forward_input_rank", "forward", dict(input=[5, 5, 2]), "input"),
      ("forward_filter_rank", "forward", dict(filter_sizes=[3, 3, 2]),
       "filter"),
      ("forward_filter_depth", "forward", dict(filter_sizes=[3, 3, 3, 1]),
       "in_depth"),
      ("forward_output_shape", "forward", dict(out_backprop=[1, 4, 5, 2]),
       "out_backprop_shape"),
      ("forward_output_overflow", "forward",
       dict(input=[1, 0, 2**40, 1], filter_sizes=[1, 1, 1, 2**20],
            padding=[[0, 0], [2**40, 2**40], [0, 0], [0, 0]],
            out_backprop=[]), "output"),
      ("input_grad_sizes_length", "input_grad", dict(input=[1, 5, 5]),
       "input_sizes"),
      ("input_grad_sizes_negative", "input_grad", dict(input=[1, 5, -5, 2]),
       "input_sizes"),
      ("input_grad_batch", "input_grad", dict(out_backprop=[2, 5, 5, 2]),
       "batch"),
      ("input_grad_rows", "input_grad", dict(out_backprop=[1, 4, 5, 2]),
       "out_backprop"),
      ("input_grad_stride", "input_grad", dict(strides=[1, 1, 2, 1]),
       "out_backprop"),
      ("input_grad_filter_rank", "input_grad", dict(filter_sizes=[3, 3, 2]),
       "filter"),
  )
  def test_new_op_faults(self, op, changes, keyword):
    ex = fuzz.expect(_spec(op=op, **changes), "cabi")
    self.assertFalse(ex.ok, changes)
    self.assertIn(keyword, ex.keywords, (changes, ex.reason))

  def test_new_ops_valid(self):
    for op in ("forward", "input_grad"):
      ex = fuzz.expect(_spec(op=op), "cabi")
      self.assertTrue(ex.ok, ex.reason)
      self.assertEqual(ex.geometry["output_shape"], [1, 5, 5, 2])
    # The forward computes its output: out_backprop [] is not checked, and
    # TensorFlow has no out_backprop at all.
    self.assertTrue(fuzz.expect(_spec(op="forward", out_backprop=[]),
                                "cabi").ok)
    self.assertTrue(fuzz.expect(_spec(op="forward", out_backprop=[9]),
                                "tf").ok)
    ex = fuzz.expect(_spec(op="forward", padding="VALID"), "cabi")
    self.assertFalse(ex.ok)
    ex = fuzz.expect(_spec(op="forward", padding="VALID", out_backprop=[]),
                     "cabi")
    self.assertEqual(ex.geometry["output_shape"], [1, 3, 3, 2])

  def test_export_carries_the_op(self):
    fields = dict(f.split("=", 1) for f in fuzz.export_line(
        _spec(op="input_grad", dtype="float16", dy_dtype="float16",
              filter_sizes=[3, 3, 2, 2], out_backprop=[1, 5, 5, 4])).split())
    self.assertEqual((fields["op"], fields["valid"], fields["output"]),
                     ("input_grad", "1", "1,5,5,2"))
    # KH*KW*M terms per input-gradient element.
    self.assertEqual(float(fields["atol"]), tolerance.bound(
        "float16", 1.0, 1.0, 18, tolerance.TWO_RESULTS))
    fields = dict(f.split("=", 1) for f in fuzz.export_line(
        _spec(op="forward", out_backprop=[])).split())
    self.assertEqual((fields["op"], fields["out_backprop"], fields["output"]),
                     ("forward", ".", "1,5,5,2"))
    fields = dict(f.split("=", 1) for f in fuzz.export_line(
        _spec(op="forward", strides=[1, 0, 1, 1])).split())
    self.assertEqual((fields["valid"], fields["output"]), ("0", "."))

  def test_c_strings_end_at_nul(self):
    spec = _spec(padding="VALID\x00x", out_backprop=[1, 3, 3, 2])
    self.assertTrue(fuzz.expect(spec, "cabi").ok)
    self.assertFalse(fuzz.expect(spec, "tf").ok)


class HarnessTest(parameterized.TestCase):
  """The harness reports what goes wrong in a child, with a reproducer.

  DWOP_FUZZ_SELFTEST makes the backend misbehave on float64 specs.
  """

  def _run(self, mode, timeout=120):
    log = []
    with tempfile.TemporaryDirectory() as work_dir:
      report = fuzz.fuzz("cabi", 40, per_child=40, seed=1, timeout=timeout,
                         work_dir=work_dir, log=log.append,
                         env={"DWOP_FUZZ_SELFTEST": mode})
      self.assertLen(report.failures, 1, log)
      failure = report.failures[0]
      self.assertEqual(failure["spec"]["dtype"], "float64")
      if failure.get("reproducer"):
        with open(failure["reproducer"]) as f:
          self.assertEqual(json.loads(f.readline()), failure["spec"])
    return failure, "\n".join(log)

  def test_reports_a_crash(self):
    failure, log = self._run("abort")
    self.assertEqual(failure["kind"], "crash")
    self.assertTrue(failure["alone"])  # re-run alone, it crashed again
    self.assertIn("killed by signal 6", log)
    self.assertIn("--replay", log)

  def test_reports_a_hang(self):
    failure, log = self._run("hang", timeout=10)
    self.assertEqual(failure["kind"], "crash")
    self.assertIn("hung", log)

  def test_reports_a_wrong_answer(self):
    failure, log = self._run("wrong")
    self.assertEqual(failure["kind"], "wrong answer")
    self.assertIn("self-test: a wrong answer", log)


if __name__ == "__main__":
  sys.exit(absltest.main())
