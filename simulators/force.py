"""Force from motor-unit twitches (Fuglevand, Winter & Patla 1993), so that a commanded %MVC is a force, and how a
held force fluctuates around its target (``ForceFluctuation``).

Each unit's twitch is f(t) = P t / T exp(1 - t / T): peak P proportional to the cross-sectional area of the unit's
fibres (so fibre loss and atrophy weaken a myopathic unit, adopted fibres strengthen a reinnervated one), and
contraction time T from 90 ms for the weakest unit down by a factor 3 over the pool's range of forces. Twitches sum
with Fuglevand's gain, which saturates as the discharge rate approaches fusion: a unit firing at rate r for long
gives the mean force g(r T) P e T r. ``drive_for_force`` inverts the pool's steady-state force so a subject makes a
commanded force with its own units: a myopathic muscle, whose units are weaker, needs more drive and so recruits
more units for the same force (the early recruitment of myopathy); a neuropathic one, with fewer, larger units,
recruits fewer units that fire faster.
"""

from __future__ import annotations

import math

import numpy as np

from simulators.motor_units import MotorUnitPool

LONGEST_CONTRACTION_S = 0.09  # TL
CONTRACTION_TIME_RANGE = 3.0  # RT
FUSION_KNEE = 0.4  # normalised rate T / ISI below which twitches add linearly


def contraction_times(peak: np.ndarray) -> np.ndarray:
    """Contraction time of each unit (s): 90 ms for the weakest, shorter for stronger ones (range 3); units
    without force (peak 0: fibrillating fibres) get 90 ms and never matter."""
    strong = peak > 0
    if not strong.any():
        return np.full(peak.shape, LONGEST_CONTRACTION_S)
    weakest = float(peak[strong].min())
    span = max(float(peak[strong].max()) / weakest, 1.0 + 1e-9)
    exponent = math.log(CONTRACTION_TIME_RANGE) / math.log(span)
    return LONGEST_CONTRACTION_S * (weakest / np.where(strong, peak, weakest)) ** exponent


def steady_force(pool: MotorUnitPool, peak: np.ndarray, drive: float, contraction_s: np.ndarray | None = None) -> float:
    """Mean force (arbitrary units: P e T r summed) when every unit of ``pool`` is driven at ``drive``."""
    times = contraction_times(peak) if contraction_s is None else contraction_s
    rates = pool.firing_rate(np.full(peak.size, drive))
    return float(np.sum(twitch_gain(rates * times) * peak * math.e * times * rates))


def twitch_gain(normalised_rate: np.ndarray) -> np.ndarray:
    """Fuglevand's saturation of twitch summation: 1 up to T/ISI = 0.4, falling beyond."""
    rate = np.maximum(np.asarray(normalised_rate, dtype=np.float64), 1e-9)

    def shape(x: np.ndarray | float) -> np.ndarray:
        return (1.0 - np.exp(-2.0 * np.asarray(x) ** 3)) / np.asarray(x)

    # so that the mean force, gain x rate, rises as 1 - exp(-2 (T/ISI)^3) and saturates at fusion
    return np.where(rate <= FUSION_KNEE, 1.0, shape(FUSION_KNEE) / shape(np.maximum(rate, FUSION_KNEE)))


class ForceModel:
    """Steady-state force of a pool at each drive, and the drive that gives a force (fraction of ``reference``)."""

    def __init__(self, pool: MotorUnitPool, peak_twitch: np.ndarray, reference_force: float) -> None:
        self.pool = pool
        self.peak = np.asarray(peak_twitch, dtype=np.float64)
        self.contraction_s = contraction_times(self.peak)
        self.reference = float(reference_force)
        self._drives = np.linspace(0.0, 1.0, 2001)
        self._forces = np.array([self.force_at(d) for d in self._drives]) / self.reference
        # strictly increasing for the inverse (force is flat below the first threshold)
        self._forces = np.maximum.accumulate(self._forces + 1e-12 * self._drives)

    def force_at(self, drive: float) -> float:
        """Mean force (arbitrary units, P e T r summed) when every unit is driven at ``drive``."""
        return steady_force(self.pool, self.peak, drive, self.contraction_s)

    @property
    def max_force(self) -> float:
        """The subject's MVC as a fraction of the reference muscle's."""
        return float(self._forces[-1])

    def drive_for_force(self, force: np.ndarray) -> np.ndarray:
        """Drive (0-1) that makes ``force`` (fraction of the reference MVC); the drive saturates at 1 for forces the
        muscle cannot make."""
        return np.interp(np.asarray(force, dtype=np.float64), self._forces, self._drives, left=0.0, right=1.0)


# A person never holds a voluntary force steady: the force fluctuates around its target, mostly below 0.5 Hz, through
# oscillations of the drive common to all motor neurons (Moon, Kim, Kwon, Chen, Onushko, Lodha & Christou 2014, PLoS
# One; Dideriksen, Negro, Enoka & Farina 2012, J Neurophysiol 107:3357). Size: the coefficient of variation of force
# during constant isometric contractions held without visual feedback (as in a clinical needle examination),
# 4.06 ± 3.11 % (mean ± SD over young adults and target forces of 2-70 % MVC; Baweja, Patel, Martinkewiz, Vu &
# Christou 2009, Exp Brain Res 197:35), drawn per subject from the log-normal with that mean and SD. Sources:
# docs/simulator.md, "Force steadiness".
STEADINESS_CV_MEAN = 0.0406
STEADINESS_CV_SD = 0.0311
STEADINESS_CORNER_HZ = 0.3  # Lorentzian spectrum: ~70 % of the 0.05-2 Hz power lies below 0.5 Hz
STEADINESS_BAND_HZ = (0.05, 2.0)
STEADINESS_COMPONENTS = 32


class ForceFluctuation:
    """The relative deviation of a held force from its target over time: a sum of sinusoids with random phases whose
    powers follow a low-pass (Lorentzian) spectrum, scaled to the subject's coefficient of variation. A function of
    absolute time, so the samples do not depend on how the stream is cut into blocks."""

    def __init__(self, cv: float, rng: np.random.Generator) -> None:
        lo, hi = STEADINESS_BAND_HZ
        edges = np.geomspace(lo, hi, STEADINESS_COMPONENTS + 1)
        # one component per log-spaced band, at a random frequency inside it (no fixed beat pattern)
        self.frequencies_hz = edges[:-1] * (edges[1:] / edges[:-1]) ** rng.uniform(0.0, 1.0, STEADINESS_COMPONENTS)
        power = np.diff(np.arctan(edges / STEADINESS_CORNER_HZ))  # Lorentzian power in each band
        amplitude = np.sqrt(2.0 * power / power.sum())  # unit variance in all
        self.amplitudes = float(cv) * amplitude
        self.phases = rng.uniform(0.0, 2.0 * math.pi, STEADINESS_COMPONENTS)
        self.cv = float(cv)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ForceFluctuation:
        """A subject's fluctuation, its CV drawn from the log-normal of Baweja et al. 2009's mean and SD."""
        sigma = math.sqrt(math.log(1.0 + (STEADINESS_CV_SD / STEADINESS_CV_MEAN) ** 2))
        mu = math.log(STEADINESS_CV_MEAN) - 0.5 * sigma**2
        return cls(float(np.exp(rng.normal(mu, sigma))), rng)

    def factor(self, time_s: np.ndarray) -> np.ndarray:
        """1 + the relative deviation at each time (s), never below 0: multiplies the target force."""
        phase = 2.0 * math.pi * np.asarray(time_s, dtype=np.float64)[..., None] * self.frequencies_hz + self.phases
        return np.maximum(1.0 + np.sin(phase) @ self.amplitudes, 0.0)
