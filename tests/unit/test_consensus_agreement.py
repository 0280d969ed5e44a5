"""Consensus reviews (pure parts): which images get a second reviewer, the copies' data, and the
agreement read from Label Studio task dicts, against hand-computed figures."""

from __future__ import annotations

import pytest

from labelwise.catalog import ImageRecord
from labelwise.domain import ImageStatus
from labelwise.review.consensus import agreement_from_tasks, consensus_copies, consensus_images

NAMES = ("a", "b")


def box(label: str, x: float, y: float, w: float = 20.0, h: float = 20.0) -> dict:
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 100, "original_height": 100,
            "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}}


def task(task_id: int, data: dict, *results: list[dict], user: int = 1) -> dict:
    return {"id": task_id, "data": data,
            "annotations": [{"id": task_id * 10 + k, "result": r, "was_cancelled": False,
                             "completed_by": user, "updated_at": f"2026-01-0{k + 1}"}
                            for k, r in enumerate(results)]}


@pytest.mark.parametrize("n, share, expected", [(10, 0.0, 0), (10, 0.1, 1), (10, 0.25, 3), (3, 1.0, 3), (0, 0.5, 0)])
def test_the_share_is_rounded_up_and_the_choice_is_stable(n, share, expected):
    ids = [f"img{i}" for i in range(n)]
    chosen = consensus_images(ids, 4, share)
    assert len(chosen) == expected and chosen == consensus_images(ids, 4, share)
    assert chosen == [i for i in ids if i in chosen]  # in the batch's order
    with pytest.raises(ValueError, match=r"consensus share must lie in \[0, 1\]; got 1.5"):
        consensus_images(ids, 4, 1.5)


def test_copies_are_made_once_per_extra_reviewer():
    main = {"x": {"data": {"image": "/data/x.png", "image_id": "x", "reason_text": "why"},
                  "predictions": [{"result": []}]}}
    copies = consensus_copies(main, ["x"], 3, 2, set())
    assert [c["data"]["consensus_key"] for c in copies] == ["x:r2", "x:r3"]
    assert all("image_id" not in c["data"] and c["predictions"] == [{"result": []}] for c in copies)
    assert consensus_copies(main, ["x"], 3, 2, {"x:r2", "x:r3"}) == []


def test_agreement_matches_a_hand_computed_case():
    images = [ImageRecord(image_id=i, path=None, status=ImageStatus.LABELLED, ls_task_id=t,  # type: ignore[arg-type]
                          width=100, height=100, queued_round=0) for i, t in (("p", 1), ("q", 2))]
    tasks = [
        # p: A draws a, b; B draws the same a and misses b -> 1 matched of 2 + 1 boxes
        task(1, {"image_id": "p", "round": 0}, [box("a", 10, 10), box("b", 60, 60)], user=1),
        task(11, {"consensus_of": "p", "consensus_key": "p:r2", "reviewer": 2, "round": 0},
             [box("a", 11, 10)], user=2),
        # q: both draw one b in the same place -> 1 matched of 1 + 1
        task(2, {"image_id": "q", "round": 0}, [box("b", 30, 30)], user=1),
        task(12, {"consensus_of": "q", "consensus_key": "q:r2", "reviewer": 2, "round": 0},
             [box("b", 30, 31)], user=2),
    ]
    got = agreement_from_tasks(images, tasks, NAMES, 0, floor=0.9)
    assert got["images_compared"] == 2 and got["pending"] == 0
    assert got["box_f1"] == pytest.approx(2 * 2 / 5)  # pooled: 2 matched, 3 + 2 boxes
    # presence per (image, class): p a/a, p b/-, q -/-, q b/b -> observed 3/4; A has 3 present,
    # B 2: expected (3*2 + 1*2) / 16 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    assert got["kappa"] == pytest.approx(0.5)
    assert got["below_floor"] is True
    assert got["merged"] == {"agreed_boxes": 2, "third_look_boxes": 1, "third_look_images": ["p"]}
    assert got["pairs"] == [{"reviewers": [1, 2], "images": 2, "box_f1": pytest.approx(0.8),
                             "kappa": pytest.approx(0.5)}]
    pending = agreement_from_tasks(images, tasks[:1] + [task(11, tasks[1]["data"])], NAMES, 0, 0.6)
    assert (pending["images_compared"], pending["pending"], pending["box_f1"]) == (0, 1, None)
