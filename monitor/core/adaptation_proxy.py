"""Live adaptation across the core/view boundary: the ``AdaptationSession`` stays in the core (beside the filtered
samples it cuts and the worker it swaps); an attached window's adaptation panel drives it through the control channel
and reads its progress from the core's status document.

``describe(session)`` is the panel's view of the session as JSON; ``handle(session, request)`` applies one panel
action; ``RemoteAdaptation`` is what the panel gets in a view process (the attributes and methods it uses).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from monitor.adaptation.marks import Mark
from monitor.errors import UserError


def describe(session: Any) -> dict[str, Any]:
    job = session.job
    return {
        "patient_id": session.patient_id,
        "classes": [str(name) for name in session.card.classes],
        "status": session.status,
        "busy": bool(session.busy),
        "job": None if job is None else {"finished": bool(job.finished), "epochs": int(job.epochs),
                                         "epoch": int(job.epoch), "state": str(job.state)},  # fmt: skip
        "last_figures": dict(session.last_figures),
        "models": [entry.model_id for entry in session.models],
        "active": session.active.model_id,
        "open_label": session.marks.open_label,
        "seconds_per_label": session.marks.seconds_per_label(),
    }


def handle(session: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One panel action: begin/finish a label span, add a selected span, start, cancel, switch_to a model."""
    action = request.get("action")
    if action == "begin":
        session.marks.begin(str(request["label"]), float(request["timestamp"]), str(request.get("source", "button")))
    elif action == "finish":
        session.marks.finish(float(request["timestamp"]))
    elif action == "add":
        session.marks.add(Mark.from_dict(request["mark"]))
    elif action == "start":
        session.start()
    elif action == "cancel":
        session.cancel()
    elif action == "switch_to":
        session.switch_to(str(request["model_id"]))
    else:
        raise ValueError(f"unknown adaptation action {action!r}")
    return {"adaptation": describe(session)}


class RemoteMarks:
    def __init__(self, owner: RemoteAdaptation) -> None:
        self._owner = owner

    def begin(self, label: str, timestamp: float, source: str = "button") -> None:
        self._owner.ask(action="begin", label=label, timestamp=timestamp, source=source)

    def finish(self, timestamp: float) -> None:
        self._owner.ask(action="finish", timestamp=timestamp)

    def add(self, mark: Mark) -> None:
        reply = self._owner.request(action="add", mark=mark.to_dict())
        if not reply.get("ok"):
            raise ValueError(reply.get("error", "refused"))

    @property
    def open_label(self) -> str | None:
        return self._owner.document["open_label"]

    def seconds_per_label(self) -> dict[str, float]:
        return dict(self._owner.document["seconds_per_label"])


class RemoteAdaptation:
    """The core's AdaptationSession as the adaptation panel sees it (``update`` takes each new status document)."""

    def __init__(self, control: Any, document: dict[str, Any]) -> None:
        self._control = control
        self.marks = RemoteMarks(self)
        self.patient_id = document["patient_id"]
        self.card = SimpleNamespace(classes=list(document["classes"]))
        self._local_status: str | None = None
        self.update(document)

    def update(self, document: dict[str, Any]) -> None:
        self.document = document
        self._local_status = None
        job = document["job"]
        self.job = None if job is None else SimpleNamespace(**job)
        self.busy = document["busy"]
        self.last_figures = document["last_figures"]
        self.models = [SimpleNamespace(model_id=model_id) for model_id in document["models"]]
        self.active = next((m for m in self.models if m.model_id == document["active"]), None)

    @property
    def status(self) -> str:
        return self._local_status if self._local_status is not None else self.document["status"]

    @status.setter
    def status(self, text: str) -> None:  # the panel shows a refusal here until the core says more
        self._local_status = text

    def step(self) -> None:
        """The core steps its session; the panel's timer has nothing to do here."""

    def request(self, **fields: Any) -> dict[str, Any]:
        reply = self._control.request("adaptation", **fields)
        if reply.get("ok"):
            self.update(reply["adaptation"])
        return reply

    def ask(self, **fields: Any) -> None:
        """An action whose refusal is a UserError, as the session's own."""
        reply = self.request(**fields)
        if not reply.get("ok"):
            raise UserError(reply.get("error", "refused"))

    def start(self) -> None:
        self.ask(action="start")

    def cancel(self) -> None:
        self.ask(action="cancel")

    def switch_to(self, model_id: str) -> None:
        self.ask(action="switch_to", model_id=model_id)
