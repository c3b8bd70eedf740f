"""docs/model-card.md is exactly what models/model_card.py writes from default.card.json, and the card's own
figures agree with the weights they describe."""

from __future__ import annotations

import copy
import json

from models.checkpoint import BUNDLED_CHECKPOINT, card_path
from models.model_card import PAGE, main, render
from tests.conftest import REPO


def bundled() -> dict:
    return json.loads(card_path(BUNDLED_CHECKPOINT).read_text())


def test_the_page_is_the_one_generated_from_the_card() -> None:
    assert PAGE == REPO / "docs" / "model-card.md"
    assert PAGE.read_text() == render(bundled()), "run `.venv/bin/python -m models.model_card` and commit the page"
    assert main(["--check"]) == 0


def test_the_prose_follows_the_card_where_the_hand_written_page_contradicted_it() -> None:
    card = bundled()
    page = render(card)
    config = card["training"]["config"]
    assert f"{card['training']['parameters']:,} parameters" in page
    assert "No handcrafted features" in page and "MODEL_FEATURES" not in page  # feature_names is empty
    assert (f"label smoothing {config['label_smoothing']:g}" in page if config["label_smoothing"]
            else "no label smoothing (0)" in page)
    assert f"patience {config['patience']}" in page and f"--patience {config['patience']}" in page
    # another card gives another page: nothing is copied from a stale text
    changed = copy.deepcopy(card)
    changed["training"]["config"]["label_smoothing"] = 0.1
    changed["feature_names"] = ["log_MAV", "ZC"]
    changed["network"]["n_features"] = 2
    other = render(changed)
    assert "label smoothing 0.1" in other and "--label-smoothing 0.1" in other and "--no-features" not in other
    assert "2 per channel: log_MAV, ZC" in other


def test_the_cards_parameter_count_is_the_networks() -> None:
    from models.checkpoint import load_checkpoint
    from models.neurofusionnet import parameter_count

    model, card = load_checkpoint()
    assert parameter_count(model) == card.training["parameters"] == bundled()["training"]["parameters"]
