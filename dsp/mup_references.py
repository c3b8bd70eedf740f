"""Published concentric-needle MUP reference values per muscle, and the criteria a reading applies to them.

Each table is cited in docs/needle-emg.md ("Reference values"); a muscle without a table says so (``reference_for``
returns None and the reading is "no reference for <muscle>"), never a made-up number.

Criteria (applied in ``dsp.mup_reading``):
- mean duration more than 20 % below / above the reference mean is myopathic / neurogenic (Buchthal's convention,
  the usual clinical rule for the mean of ~20 MUPs);
- mean amplitude outside the reference mean ± 2 SD;
- outliers (Stålberg et al. 1996, Muscle Nerve 19:457; the Keypoint "outlier" limits): a muscle is abnormal when more
  than 2 of 20 MUPs lie beyond the single-MUP limits on one side; for ``n`` MUPs the allowance is 2 * n / 20 rounded
  up and at least 2 (``allowed_outliers``), so 8 MUPs tolerate two, 30 tolerate three.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dsp.mup_measures import ReferenceRange

MEAN_DURATION_TOLERANCE = 0.2  # Buchthal: mean duration beyond ±20 % of the reference mean is abnormal
OUTLIERS_ALLOWED_PER_20 = 2

_NORWEGIAN = (
    "Norsk forening for klinisk nevrofysiologi, 'Referanseverdier for EMG og single fiber EMG' (Retningslinjer for "
    "metoder i KNF, kapittel 5), table 'Normalverdier standard EMG': multi-MUP analysis, concentric needle, "
    "mean ± SD over subjects and outlier limits (Keypoint definition)"
)
_JNNP_TA = (
    "J Neurol Neurosurg Psychiatry, table 1 'Control values in the healthy subjects for tibialis anterior (TA) "
    "muscle recordings': mean ± SD, upper limits of normal mean + 2 SD"
)
_NO_AGE = "adults; the source gives no age strata, so age is recorded but does not change the values"


@dataclass(frozen=True)
class MuscleReference:
    """Reference values for the MUPs of one muscle; None where the source gives no value."""

    muscle: str
    duration_mean_ms: float
    duration_sd_ms: float
    amplitude_mean_uv: float | None
    amplitude_sd_uv: float | None
    duration_outliers_ms: tuple[float, float] | None  # single-MUP limits (low, high)
    amplitude_outliers_uv: tuple[float, float] | None
    phases_uln: float | None  # upper limit of normal of the mean number of phases
    polyphasic_uln_percent: float | None
    source: str
    ages: str = _NO_AGE

    def mean_ranges(self) -> dict[str, ReferenceRange]:
        """Limits for the mean over the MUPs of the muscle."""
        ranges = {
            "duration_ms": ReferenceRange(
                round(self.duration_mean_ms * (1 - MEAN_DURATION_TOLERANCE), 3),
                round(self.duration_mean_ms * (1 + MEAN_DURATION_TOLERANCE), 3),
                "ms",
                f"{self.source}; ±20 % of the mean {self.duration_mean_ms} ms (Buchthal)",
            )
        }
        if self.amplitude_mean_uv is not None and self.amplitude_sd_uv is not None:
            low = max(self.amplitude_mean_uv - 2 * self.amplitude_sd_uv, 0.0)
            ranges["amplitude_uv"] = ReferenceRange(low, self.amplitude_mean_uv + 2 * self.amplitude_sd_uv, "µV",
                                                    f"{self.source}; mean ± 2 SD")  # fmt: skip
        if self.phases_uln is not None:
            ranges["phases"] = ReferenceRange(None, self.phases_uln, "count", self.source)
        if self.polyphasic_uln_percent is not None:
            ranges["polyphasic_percent"] = ReferenceRange(None, self.polyphasic_uln_percent, "%", self.source)
        return ranges

    def individual_ranges(self) -> dict[str, ReferenceRange]:
        """Single-MUP (outlier) limits."""
        ranges = {}
        if self.duration_outliers_ms is not None:
            ranges["duration_ms"] = ReferenceRange(*self.duration_outliers_ms, "ms", f"{self.source}; outlier limits")
        if self.amplitude_outliers_uv is not None:
            ranges["amplitude_uv"] = ReferenceRange(*self.amplitude_outliers_uv, "µV", f"{self.source}; outlier limits")
        return ranges

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["mean_ranges"] = {name: asdict(r) for name, r in self.mean_ranges().items()}
        out["individual_ranges"] = {name: asdict(r) for name, r in self.individual_ranges().items()}
        return out


REFERENCES: dict[str, MuscleReference] = {
    "deltoid": MuscleReference("deltoid", 10.4, 1.3, 550.0, 110.0, (4.2, 18.4), (162.0, 1531.0), None, None,
                               _NORWEGIAN),
    "biceps": MuscleReference("biceps", 9.9, 1.4, 436.0, 115.0, (4.2, 16.4), (178.0, 1414.0), None, None, _NORWEGIAN),
    "first_dorsal_interosseous": MuscleReference("first_dorsal_interosseous", 9.4, 1.3, 752.0, 247.0, (4.0, 18.0),
                                                 (188.0, 2301.0), None, None, _NORWEGIAN),
    "tibialis_anterior": MuscleReference("tibialis_anterior", 9.35, 0.93, 661.5, 92.0, None, None, 4.19, 35.0,
                                         _JNNP_TA),
}  # fmt: skip

# muscles the product names (``--muscle``) whose published table is not at hand here: the reading says so
WITHOUT_REFERENCE = ("vastus_medialis",)
KNOWN_MUSCLES = tuple(sorted((*REFERENCES, *WITHOUT_REFERENCE)))

_ALIASES = {
    "biceps brachii": "biceps",
    "bb": "biceps",
    "deltoideus": "deltoid",
    "deltoid posterior": "deltoid",
    "fdi": "first_dorsal_interosseous",
    "interosseus dorsalis i": "first_dorsal_interosseous",
    "first dorsal interosseus": "first_dorsal_interosseous",
    "ta": "tibialis_anterior",
    "vm": "vastus_medialis",
}


def canonical_muscle(name: str) -> str:
    """'Biceps Brachii' -> 'biceps', 'FDI' -> 'first_dorsal_interosseous'; unknown names are only normalised."""
    key = " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())
    return _ALIASES.get(key, key.replace(" ", "_"))


def reference_for(muscle: str | None, age: float | None = None) -> MuscleReference | None:
    """The reference of ``muscle`` (any spelling ``canonical_muscle`` knows), or None where none is published here.

    ``age`` must be a plausible age in years (ValueError otherwise); none of the tables at hand is age-stratified,
    so it is validated and reported but selects nothing yet."""
    if age is not None and not (math.isfinite(age) and 0 <= age <= 120):
        raise ValueError(f"age must be in years (0-120), not {age!r}")
    if muscle is None:
        return None
    return REFERENCES.get(canonical_muscle(muscle))


def allowed_outliers(n_mups: int) -> int:
    """How many MUPs may lie beyond the single-MUP limits on one side: 2 of 20, scaled up for more MUPs and
    rounded up, never fewer than 2 (with 8 MUPs two outliers are as likely by chance as three of 20)."""
    return max(OUTLIERS_ALLOWED_PER_20, math.ceil(OUTLIERS_ALLOWED_PER_20 * n_mups / 20))
