"""Build `token-scripts.jsonl`: real texts in many scripts with their exact Gemini token counts.

    python tests/data/build_token_scripts.py        # on a Debian machine with the packages listed in the README

Texts are translated messages from the gettext catalogs that Debian packages install
(`/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo`, `/usr/share/vim/vim90/lang`) and chunks of source files
(C headers, JavaScript, shell, Perl, SQL). Each is labelled with its Gemma 3 SentencePiece count
(`gemma3.spiece.model`, the count Gemini 2.x/3.x bill). The split is recorded per text:

- whole languages are held out (`HELD_OUT_LANGUAGES`), so the fit never sees them;
- in the other languages, a message is held out when the sha256 of its English msgid starts with an even byte
  (the same message is then held out in every language: the fit never sees a translation of it), a chunk of
  source code when the sha256 of its file's path does (the fit never sees that file).

Selection is deterministic: per language, the distinct texts of 24 to 1,200 UTF-8 bytes (translations that differ
from their English msgid, with at least a third of their letters in the language's script), ordered by sha256,
the first `PER_LANGUAGE[lang]`. Nothing here is read by the tests; they read only the JSONL it writes.
"""

from __future__ import annotations

import gettext
import glob
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import sentencepiece as spm

HERE = Path(__file__).resolve().parent
OUT = HERE / "token-scripts.jsonl"
SPIECE = HERE / "gemma3.spiece.model"

# language -> (script, texts to keep); "kana" is Japanese (kana and kanji), "hangul" Korean. Latin: European
# languages beyond the calibration file's de/es.
LATIN = ["fr", "it", "pt_BR", "nl", "pl", "sv", "tr", "vi", "id", "ca", "sk", "sl", "lv", "nb", "eo", "sq", "ga"]
LATIN += ["cs", "da", "fi", "hu", "ro", "hr", "lt", "et", "gl", "eu"]
LANGUAGES: dict[str, tuple[str, int]] = {
    **dict.fromkeys(LATIN, ("latin", 160)),
    **dict.fromkeys(["uk", "bg", "kk", "sr", "be", "mk", "mn"], ("cyrillic", 300)),
    "el": ("greek", 1200),
    **{lang: ("arabic", n) for lang, n in {"ar": 900, "ug": 500, "fa": 500, "ps": 350}.items()},
    **{lang: ("devanagari", n) for lang, n in {"hi": 800, "mr": 800, "ne": 500, "mai": 500}.items()},
    **{lang: ("han", n) for lang, n in {"zh_CN": 800, "zh_TW": 400, "zh_HK": 250}.items()},
    "ja": ("kana", 1200),  # kana and kanji
    "ko": ("hangul", 1200),
}
CODE: dict[str, tuple[str, int]] = {  # language -> (glob, chunks to keep)
    "c": ("/usr/include/**/*.h", 400),
    "javascript": ("/usr/lib/node_modules/npm/**/*.js", 400),
    "shell": ("/usr/share/**/*.sh", 200),
    "perl": ("/usr/share/perl/5.36.0/**/*.pm", 250),
    "sql": ("/usr/share/postgresql/15/**/*.sql", 200),
}
# Never seen by the fit: ten European Latin languages, four Cyrillic, two Arabic-script, two Devanagari, Traditional
# Chinese, two programming languages. Greek, Japanese and Korean have one language each here: catalog split only.
HELD_OUT_LANGUAGES = frozenset(
    "cs da fi hu ro hr lt et gl eu  sr be mk mn  fa ps  ne mai  zh_TW zh_HK  perl sql".split()  # noqa: SIM905
)
MIN_BYTES, MAX_BYTES = 24, 1200
SCRIPT_LETTERS = {
    "cyrillic": "[\u0400-\u052f]",
    "greek": "[\u0370-\u03ff\u1f00-\u1fff]",
    "arabic": "[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]",
    "devanagari": "[\u0900-\u097f]",
    "han": "[\u3400-\u9fff\uf900-\ufaff]",
    "kana": "[\u3040-\u30ff\u3400-\u9fff]",
    "hangul": "[\uac00-\ud7af]",
}


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def catalogs(lang: str) -> Iterator[tuple[str, str, str, str]]:
    """(domain, catalog path, English msgid, translated message) for every catalog of `lang` that decodes."""
    paths = glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo") + glob.glob(
        f"/usr/share/vim/vim90/lang/{lang}/LC_MESSAGES/*.mo"
    )
    for path in sorted(paths):
        domain = Path(path).stem
        if domain.startswith("iso_"):  # lists of country and language names, not sentences
            continue
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except (UnicodeDecodeError, IndexError, OSError):  # a few catalogs declare the wrong charset
            continue
        for key, value in catalog.items():
            msgid = key[0] if isinstance(key, tuple) else key
            if msgid and value and value != msgid:
                yield domain, path, msgid, value


def _in_script(text: str, script: str) -> bool:
    if script == "latin":
        return True
    letters = sum(ch.isalpha() for ch in text)
    return letters > 0 and len(re.findall(SCRIPT_LETTERS[script], text)) * 3 >= letters


Candidates = dict[str, tuple[str, str, str]]  # text -> (source, path, split key)


def _pick(candidates: Candidates, n: int) -> list[tuple[str, tuple[str, str, str]]]:
    """The first n (text, (source, path, split key)) by sha256 of the text: unrelated to length or source."""
    kept = [(t, s) for t, s in candidates.items() if MIN_BYTES <= len(t.encode()) <= MAX_BYTES]
    return sorted(kept, key=lambda pair: _sha(pair[0]))[:n]


def messages(lang: str, script: str, n: int) -> list[tuple[str, tuple[str, str, str]]]:
    candidates: Candidates = {}
    for domain, path, msgid, text in catalogs(lang):
        if _in_script(text, script):
            candidates.setdefault(text, (domain, path, msgid))
    return _pick(candidates, n)


def chunks(path: str) -> Iterator[str]:
    """Runs of whole paragraphs (split at blank lines) of 200 to ~1,200 characters."""
    try:
        text = Path(path).read_text("utf-8")
    except (UnicodeDecodeError, OSError):
        return
    current = ""
    for block in re.split(r"\n\s*\n", text):
        current = f"{current}\n\n{block}" if current else block
        if len(current) >= 200:
            yield current
            current = ""


def code(lang: str, pattern: str, n: int) -> list[tuple[str, tuple[str, str, str]]]:
    candidates: Candidates = {}
    for path in sorted(glob.glob(pattern, recursive=True)):
        for chunk in chunks(path):
            candidates.setdefault(chunk, (os.path.relpath(path, "/"), path, path))
    return _pick(candidates, n)


def packages_of(paths: set[str]) -> list[str]:
    """The Debian packages (with versions) that installed these files: the provenance listed in the README."""
    names = set()
    for path in sorted(paths):
        out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False).stdout
        names.update(name.split(":")[0] for name in out.split(": ")[0].split(", ") if out)
    query = ["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *sorted(names)]
    return subprocess.run(query, capture_output=True, text=True, check=False).stdout.splitlines()


def held_out(lang: str, split_key: str) -> bool:
    return lang in HELD_OUT_LANGUAGES or _sha(split_key)[0] % 2 == 0


def build() -> tuple[list[dict[str, object]], set[str]]:
    rows: list[dict[str, object]] = []
    paths: set[str] = set()
    picked = [(lang, script, messages(lang, script, n)) for lang, (script, n) in LANGUAGES.items()]
    picked += [(lang, "code", code(lang, pattern, n)) for lang, (pattern, n) in CODE.items()]
    sp = spm.SentencePieceProcessor(model_file=str(SPIECE))
    for lang, script, pairs in picked:
        counts = sp.encode([text for text, _ in pairs])
        for (text, (source, path, split_key)), ids in zip(pairs, counts, strict=True):
            paths.add(path)
            rows.append(
                {
                    "text": text,
                    "lang": lang,
                    "script": script,
                    "source": source,
                    "split": "held_out" if held_out(lang, split_key) else "fit",
                    "gemini_tokens": len(ids),
                }
            )
    return rows, paths


def main() -> None:
    rows, paths = build()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(rows)} texts to {OUT} ({OUT.stat().st_size:,} bytes), from the Debian packages:")
    print("\n".join(packages_of(paths)))


if __name__ == "__main__":
    main()
