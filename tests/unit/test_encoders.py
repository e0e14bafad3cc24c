"""Encoder readouts on a tiny random BERT: the final layer by default, or several layers."""

import numpy as np
import pytest

from llink.encoders import check_layers, load_encoder
from llink.errors import LlinkError

TEXTS = ["បើក ឯកសារ", "open the file menu now please", "ជ្រើស", "save"]


def test_layer_readout_concatenates_normalised_layers(tiny_dirs):
    final = load_encoder(tiny_dirs["encoder"])
    layered = load_encoder(tiny_dirs["encoder"], layers=[0, 2])
    assert final.layers is None and final.dim == 24
    assert layered.dim == 48 and layered.id != final.id and layered.id.endswith("layers=0,2")
    v = layered.encode(TEXTS, progress=False)
    assert v.shape == (4, 48)
    np.testing.assert_allclose(np.linalg.norm(v.reshape(4, 2, 24), axis=-1), 1, atol=1e-5)
    # The last block is the default readout (final layer, mean over real tokens), normalised.
    f = final.encode(TEXTS, progress=False)
    np.testing.assert_allclose(v[:, 24:], f / np.linalg.norm(f, axis=1, keepdims=True), atol=1e-5)


def test_rows_come_back_in_input_order_and_do_not_depend_on_their_company(tiny_dirs):
    """Batches group texts by token length; the rows come back in input order, each exactly
    what the text gives alone (llink.batching)."""
    enc = load_encoder(tiny_dirs["encoder"], layers=[1])
    together = enc.encode(TEXTS, batch_size=2, progress=False)
    alone = np.concatenate([enc.encode([t], progress=False) for t in TEXTS])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("bad", [[], [3], [1, 1], [-1], ["x"]])
def test_bad_layers_are_refused_by_name(bad):
    with pytest.raises(LlinkError, match="encoder_layers"):
        check_layers(bad, 2, "tiny")


def test_layers_parse():
    assert check_layers(None, 12, "e5") is None
    assert check_layers(12, 12, "e5") == [12]
    assert check_layers(["4", 8], 12, "e5") == [4, 8]
