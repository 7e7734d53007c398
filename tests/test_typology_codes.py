"""Every language code of analysis.typology against what lang2vec (URIEL) really holds.

URIEL files some languages under the ISO 639-3 macrolanguage and others under an individual
language; a code it lacks, or holds with an all-zero vector, used to give a crash or a NaN
distance. Skips cleanly when lang2vec is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.typology import (
    FEATURE_SETS,
    ISO3,
    MACROLANGUAGES,
    NO_DATA,
    has_data,
    iso3,
    uriel_distance,
)

SETS = sorted({fs for sets in FEATURE_SETS.values() for fs in sets})


@pytest.fixture(scope="module")
def uriel():
    """code -> feature set -> vector (NaN for '--'), for every code the module names."""
    l2v = pytest.importorskip("lang2vec.lang2vec")
    known = set(l2v.available_uriel_languages())
    codes = set(ISO3.values()) | set(MACROLANGUAGES) | {c for m in MACROLANGUAGES.values() for c in m}
    held = sorted(codes & known)
    out: dict[str, dict[str, np.ndarray]] = {c: {} for c in held}
    for fs in SETS:
        feats = l2v.get_features(held, fs)
        for c in held:
            out[c][fs] = np.array([np.nan if x == "--" else float(x) for x in feats[c]])
    return out


@pytest.mark.parametrize("lang", sorted(ISO3))
def test_every_table_code_has_data_in_every_feature_set(uriel, lang):
    code = ISO3[lang]
    assert code in uriel, f"{lang} -> {code}: lang2vec has no URIEL entry"
    for fs in SETS:
        if (code, fs) in NO_DATA:
            assert not has_data(uriel[code][fs]), f"{code}/{fs} has data now: drop it from NO_DATA"
            continue
        assert has_data(uriel[code][fs]), f"{lang} -> {code}: no {fs} data in URIEL"


@pytest.mark.parametrize("macro", sorted(MACROLANGUAGES))
def test_every_macrolanguage_group_offers_a_usable_code(uriel, macro):
    """The 'what to pass' of an error is never empty for a group the module knows."""
    usable = [c for c in (macro, *MACROLANGUAGES[macro]) if c in uriel and all(has_data(uriel[c][fs]) for fs in SETS)]
    assert usable, f"no code of {macro} {MACROLANGUAGES[macro]} has data in every URIEL feature set"


def test_codes_uriel_lacks_say_what_to_pass(uriel, tmp_path):
    # the vectors read above, as our cache: the error paths then ask lang2vec only what it holds
    cache = {f"{fs}/{c}": [float(x) for x in v] for c, sets in uriel.items() for fs, v in sets.items()}
    (tmp_path / "uriel.json").write_text(json.dumps(cache))
    assert iso3("ar") == "arb" and iso3("lv") == "lav" and iso3("nb") == "nor"
    with pytest.raises(KeyError, match=r"no URIEL entry for 'ara' \(language 'ara'\).*pass 'arb'"):
        uriel_distance("en", "ara", cache_dir=tmp_path)
    with pytest.raises(KeyError, match=r"no URIEL entry for 'zho'.*pass 'cmn' or 'yue'"):
        uriel_distance("en", "zho", cache_dir=tmp_path)
    with pytest.raises(KeyError, match=r"no URIEL entry for 'lvs'.*pass 'lav'"):
        uriel_distance("lvs", "en", cache_dir=tmp_path)
    # held by URIEL, but without family data: the macrolanguage has it
    with pytest.raises(KeyError, match=r"no 'fam' data for 'nob'.*pass 'nor' instead of 'nob'"):
        uriel_distance("en", "nob", "genetic", cache_dir=tmp_path)
    # an isolate: no code helps, the distance kind is left out
    with pytest.raises(KeyError, match=r"no 'fam' data for 'eus' \(language 'eu'.*isolate.*leave 'genetic' out"):
        uriel_distance("en", "eu", "genetic", cache_dir=tmp_path)
    with pytest.raises(KeyError, match=r"'xx'.*pass its ISO 639-3 code"):
        iso3("xx")
    d = uriel_distance("en", "lv", "genetic", cache_dir=tmp_path)
    assert np.isfinite(d) and 0 < d <= 1  # Latvian: Indo-European like English, not the same branch
