"""Build ``embedops/data/general-definitions.json`` from WordNet 3.0 (Princeton University).

The general *definitions* rail: everyday words asked about as a search engine is asked ("what does
okapi mean"), each answered by its WordNet definition, with a near miss (the definition of a sibling
sense under the same hypernym: another dance, another vein) and definitions of unrelated senses as
the rest of the corpus. Matching a word to what it means is general knowledge a domain fine-tune can
wear away without any sentence-similarity set noticing; see ``embedops/data/README.md`` for what it
measured.

Reads the WordNet database as the Debian package ``wordnet-base`` installs it
(``apt-get install wordnet-base``: ``/usr/share/wordnet``). Deterministic: the same database gives
the same file. Rules, fixed before any model was scored on the result:

* a word qualifies when it has exactly one sense in all of WordNet (one index line, in one part of
  speech, one synset), that sense is tagged at least once in the SemCor counts (so the word is in
  everyday use), and neither it nor its stem (the word less a final s/ed/ing/ly) appears in the
  definition;
* the definition is the gloss without its quoted examples (they use the word);
* the near miss is the gloss of another synset with the same hypernym whose text does not use the
  word either; words without one are skipped;
* 1,000 such words are drawn with ``random.Random(0)``, and 1,000 unrelated glosses follow.

Example::

    apt-get install -y wordnet-base
    python scripts/build_definitions_rail.py --out embedops/data/general-definitions.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

POS = ("noun", "verb", "adj", "adv")
ABOUT = ("embedops' bundled general definitions rail, derived from WordNet 3.0 (Princeton "
         "University; WordNet 3.0 licence, notice in embedops/data/README.md): each everyday word "
         "asked about, with its definition and a near miss (a sibling sense's definition), then "
         "unrelated definitions")


def _gloss(line: str) -> str:
    text = line.split(" | ", 1)[1].strip()
    text = re.sub(r';?\s*"[^"]*"', "", text)  # quoted examples use the word
    return text.strip(" ;").strip()


def _synsets(root: Path) -> dict[str, tuple[list[str], str, list[str]]]:
    """offset:pos -> (words, gloss, hypernym keys)."""
    out = {}
    for pos in POS:
        for line in (root / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue
            f = line.split(" | ", 1)[0].split()
            offset, ss = f[0], f[2]
            n_words = int(f[3], 16)
            words = [f[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            words = [re.sub(r"\(.*\)$", "", w) for w in words]
            p = 4 + 2 * n_words
            n_ptr = int(f[p])
            hyper = []
            for i in range(n_ptr):
                sym, target, tpos = f[p + 1 + 4 * i: p + 4 + 4 * i]
                if sym in ("@", "@i"):
                    hyper.append(f"{target}:{tpos.replace('s', 'a')}")
            out[f"{offset}:{ss.replace('s', 'a')}"] = (words, _gloss(line), hyper)
    return out


def _monosemous(root: Path) -> dict[str, str]:
    """word -> its only synset key, for words with one sense in all of WordNet, tagged in SemCor."""
    seen: dict[str, list[tuple[str, int]]] = {}
    for pos in POS:
        for line in (root / f"index.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            f = line.split()
            synset_cnt, p_cnt = int(f[2]), int(f[3])
            tagged = int(f[5 + p_cnt])
            offsets = f[6 + p_cnt:6 + p_cnt + synset_cnt]
            short = f[1].replace("s", "a")
            seen.setdefault(f[0].replace("_", " "), []).extend((f"{o}:{short}", tagged) for o in offsets)
    return {w: s[0][0] for w, s in seen.items() if len(s) == 1 and s[0][1] >= 1}


def _uses(text: str, word: str) -> bool:
    stem = re.sub(r"(ing|ed|ly|es|s)$", "", word.lower())
    low = text.lower()
    return word.lower() in low or (len(stem) >= 4 and stem in low)


def build(root: Path, n_items: int = 1000, n_unrelated: int = 1000, seed: int = 0) -> dict:
    synsets = _synsets(root)
    children: dict[str, list[str]] = {}
    for key, (_, _, hyper) in synsets.items():
        for h in hyper:
            children.setdefault(h, []).append(key)
    candidates = []
    for word, key in sorted(_monosemous(root).items()):
        if key not in synsets or not re.fullmatch(r"[a-z][a-z -]{2,}", word):
            continue
        _, gloss, hyper = synsets[key]
        if len(gloss.split()) < 4 or _uses(gloss, word):
            continue
        siblings = sorted({s for h in hyper for s in children.get(h, []) if s != key})
        misses = [synsets[s][1] for s in siblings
                  if len(synsets[s][1].split()) >= 4 and not _uses(synsets[s][1], word)]
        if misses:
            candidates.append((word, key, gloss, misses))
    rng = random.Random(seed)
    chosen = rng.sample(candidates, n_items)
    used = {c[1] for c in chosen}
    texts: set[str] = set()
    items = []
    for word, _, gloss, misses in chosen:
        miss = next((m for m in rng.sample(misses, len(misses)) if m != gloss), None)
        if miss is None or gloss in texts:
            continue
        texts.update((gloss, miss))
        items.append({"question": f"what does {word} mean", "answer": gloss, "near_miss": miss})
    pool = sorted(k for k, (_, g, _) in synsets.items()
                  if k not in used and len(g.split()) >= 4 and g not in texts)
    unrelated = []
    for key in rng.sample(pool, len(pool)):
        gloss = synsets[key][1]
        if len(unrelated) == n_unrelated:
            break
        if gloss not in texts:
            texts.add(gloss)
            unrelated.append(gloss)
    return {"about": ABOUT, "items": items, "unrelated": unrelated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"),
                        help="folder of WordNet 3.0's data.* and index.* files")
    parser.add_argument("--out", type=Path, default=Path("embedops/data/general-definitions.json"))
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--unrelated", type=int, default=1000)
    args = parser.parse_args()
    spec = build(args.wordnet, args.items, args.unrelated)
    args.out.write_text(json.dumps(spec, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(spec['items'])} questions, {len(spec['unrelated'])} unrelated definitions")


if __name__ == "__main__":
    main()
