"""Fixtures of the export tests: the model and its fp32 and fp16 graphs, exported once for the whole run."""
import pytest
from export_kit import export_onnx, export_session, make_model, session

@pytest.fixture(scope="session")
def model():
    return make_model()


@pytest.fixture(scope="session")
def fp32_onnx(model, tmp_path_factory):
    p = tmp_path_factory.mktemp("fp32") / "model.onnx"
    export_onnx(model, p)
    return p


@pytest.fixture(scope="session")
def fp32(fp32_onnx):
    return session(fp32_onnx)


@pytest.fixture(scope="session")
def fp16(model, tmp_path_factory):
    """The CUDA variant, run on ORT's CPU EP (every op in the graph has a CPU fp16 kernel)."""
    return export_session(model, tmp_path_factory.mktemp("fp16") / "model.cuda.onnx", "float16", "float16")

