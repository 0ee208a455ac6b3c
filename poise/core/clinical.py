"""The clinical vocabulary every part shares: exercises and tests, conditions, body
segments and sides. Ids, not words: a console or report translates them for people.
"""

from __future__ import annotations

# exercise or test id -> (kind, what it is). Kinds: "sway" (a standing balance trial),
# "four_stage" (one stage of the STEADI 4-Stage Balance Test), "chair_stand", "tug", "rom".
EXERCISES: dict[str, tuple[str, str]] = {
    "quiet_stance": ("sway", "quiet standing, feet together"),
    "steadi_4stage/feet_together": ("four_stage", "STEADI 4-stage: feet side by side"),
    "steadi_4stage/semi_tandem": ("four_stage", "STEADI 4-stage: semi-tandem"),
    "steadi_4stage/tandem": ("four_stage", "STEADI 4-stage: tandem"),
    "steadi_4stage/single_leg": ("four_stage", "STEADI 4-stage: one leg"),
    "chair_stand_30s": ("chair_stand", "STEADI 30-second chair stand"),
    "tug": ("tug", "Timed Up and Go"),
    "rom/knee_flexion": ("rom", "knee flexion-extension (seated, standing or squat)"),
    "rom/elbow_flexion": ("rom", "elbow flexion (curl)"),
    "rom/ankle_dorsiflexion": ("rom", "ankle dorsi/plantar flexion"),
    "rom/hip_flexion": ("rom", "hip flexion (one sensor on the thigh)"),
    "rom/shoulder_flexion": ("rom", "shoulder flexion (one sensor on the upper arm)"),
    "rom/shoulder_abduction": ("rom", "shoulder abduction (one sensor on the upper arm)"),
}
FOUR_STAGE_ORDER = (
    "steadi_4stage/feet_together",
    "steadi_4stage/semi_tandem",
    "steadi_4stage/tandem",
    "steadi_4stage/single_leg",
)
# a ROM exercise -> (joint, motion, proximal segment, distal segment); one-sensor joints
# have no proximal segment
ROM_JOINTS: dict[str, tuple[str, str, str | None, str]] = {
    "rom/knee_flexion": ("knee", "flexion", "thigh", "shank"),
    "rom/elbow_flexion": ("elbow", "flexion", "upper_arm", "forearm"),
    "rom/ankle_dorsiflexion": ("ankle", "dorsiflexion", "shank", "foot"),
    "rom/hip_flexion": ("hip", "flexion", None, "thigh"),
    "rom/shoulder_flexion": ("shoulder", "flexion", None, "upper_arm"),
    "rom/shoulder_abduction": ("shoulder", "abduction", None, "upper_arm"),
}
SEGMENTS = (
    "lower_back",
    "sternum",
    "thigh",
    "shank",
    "foot",
    "upper_arm",
    "forearm",
    "wrist",
    "chest_hr",
)
SIDES = ("left", "right", "none")
CONDITIONS: dict[str, tuple[str, ...]] = {
    "eyes": ("open", "closed"),
    "surface": ("firm", "foam"),
}


def exercise_kind(exercise: str) -> str:
    try:
        return EXERCISES[exercise][0]
    except KeyError:
        raise ValueError(f"unknown exercise {exercise!r}; known: {sorted(EXERCISES)}") from None


def condition_tag(condition: dict[str, str]) -> str:
    """A condition as one stable tag value, e.g. ``eyes=closed,surface=foam`` (sorted)."""
    return ",".join(f"{k}={condition[k]}" for k in sorted(condition)) or "none"
