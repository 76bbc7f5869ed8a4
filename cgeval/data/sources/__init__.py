"""Other seed datasets as multiple-choice sources: each loader returns `Item`s and a `SourceReport`.

Items from these sources have ``subset=None`` and ``dataset=0``; ``meta["source"]`` names the source and
``meta["source_id"]`` the record's own id. Modality / area / task keep what the source states (mapped onto the
registry's names where one fits) and are ``"unknown"`` where it states nothing.
"""

from .common import SOURCE_SKIP_REASONS, UNKNOWN, SourceReport
from .m3llm_pmc import load_m3llm_pmc
from .medical_cxr_vqa import load_medical_cxr_vqa
from .omnimedvqa import load_omnimedvqa, omnimedvqa_modality
from .pathvqa import load_pathvqa
from .slake import load_slake
from .vqa_rad import load_vqa_rad

__all__ = [
    "SOURCE_SKIP_REASONS",
    "UNKNOWN",
    "SourceReport",
    "load_m3llm_pmc",
    "load_medical_cxr_vqa",
    "load_omnimedvqa",
    "load_pathvqa",
    "load_slake",
    "load_vqa_rad",
    "omnimedvqa_modality",
]
