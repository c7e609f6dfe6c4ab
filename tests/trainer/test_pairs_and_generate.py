import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from helpers import write_jsonl
from embedops.corpus import Document
from embedops.errors import InputError
from embedops.trainer.generate import ExtractiveGenerator, GeneratorError, OpenAIGenerator, filter_pairs
from embedops.trainer.pairs import TrainingPair, import_beir, read_pairs, write_pairs


def make_beir(root, n=6):
    write_jsonl(root / "corpus.jsonl", [{"_id": f"d{i}", "title": f"T{i}", "text": f"text of doc {i}."} for i in range(n)])
    write_jsonl(root / "queries.jsonl", [{"_id": f"q{i}", "text": f"question {i}"} for i in range(n)])
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n)) + "q0\td1\t0\n")
    return root


def test_import_beir_pairs_and_round_trip_through_jsonl(tmp_path):
    pairs = import_beir(make_beir(tmp_path / "beir"))
    assert len(pairs) == 6 and pairs[0].query == "question 0" and pairs[0].positive == "T0 text of doc 0."
    out = write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert [p.doc_id for p in read_pairs(out)] == [f"d{i}" for i in range(6)]


def test_pairs_file_errors_name_the_line(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"query": "ok", "text": "fine"}, {"query": "", "text": "x"},
                                              {"query": "q", "doc_id": "nope"}, {"query": "q"}])
    with pytest.raises(InputError) as info:
        read_pairs(path, corpus={"d1": "text"})
    msg = str(info.value)
    assert ":2: field 'query'" in msg and ":3: field 'doc_id': unknown document id 'nope'" in msg and ":4: field 'text'" in msg


def test_extractive_queries_come_from_the_document():
    docs = [Document("d1", "Kafka lag grows on orders. Restart the consumer group after skipping the offset. "
                           "Check the dead letter queue first.", "Kafka lag")]
    pairs = ExtractiveGenerator(per_doc=2, seed=0).generate(docs)
    assert len(pairs) == 2 and all(p.doc_id == "d1" and p.source == "extractive" for p in pairs)
    assert all(p.query in docs[0].text or p.query == docs[0].title for p in pairs)


def test_title_queries_never_see_the_title_in_their_positive():
    docs = [Document("d1", "Kafka lag grows on orders. Restart the consumer group after skipping the offset. "
                           "Check the dead letter queue first.", "Kafka consumer lag runbook")]
    pairs = ExtractiveGenerator(per_doc=2, seed=0, title_query=True).generate(docs)
    assert [p.query for p in pairs][0] == "Kafka consumer lag runbook" and len(pairs) == 2
    assert "runbook" not in pairs[0].positive and pairs[0].positive.startswith("Kafka lag grows")
    assert pairs[1].query in docs[0].text


def test_filters_report_what_they_drop():
    pairs = [TrainingPair("kafka consumer lag", "x", "d1"), TrainingPair("Kafka  consumer LAG", "x", "d1"),
             TrainingPair("x", "y", "d2"), TrainingPair("tls cert renew", "z", "d3"), TrainingPair("redis oom fix", "w", "d4")]
    ranks = {"d1": 0, "d3": 12, "d4": None}
    kept, report = filter_pairs(pairs, rank_of=lambda qs, ids: [ranks[i] for i in ids], top_k=10)
    assert [p.doc_id for p in kept] == ["d1"]
    assert report.to_dict() == {"kept": 1, "dropped_duplicate": 1, "dropped_length": 1, "dropped_round_trip": 2}


class FakeChat(BaseHTTPRequestHandler):
    calls = []
    fail_first = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.calls.append((self.headers.get("Authorization"), body))
        if FakeChat.fail_first > 0:
            FakeChat.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        content = "1. how to fix kafka lag\n- orders consumer stuck\nkafka dlq skip offset"
        data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    FakeChat.calls, FakeChat.fail_first = [], 0
    server = HTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_generator_caches_retries_and_never_stores_the_key(chat_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test")
    docs = [Document("d1", "Kafka lag on orders.", "Kafka"), Document("d2", "TLS renewals.", "TLS")]
    FakeChat.fail_first = 1
    gen = OpenAIGenerator(base_url=chat_server, model="m", cache_dir=tmp_path / "cache", per_doc=3, backoff=0.01)
    pairs = gen.generate(docs)
    assert [p.query for p in pairs[:3]] == ["how to fix kafka lag", "orders consumer stuck", "kafka dlq skip offset"]
    assert len(pairs) == 6 and {p.source for p in pairs} == {"openai"}
    assert FakeChat.calls[0][0] == "Bearer sk-secret-test" and len(FakeChat.calls) == 3  # one retry
    again = OpenAIGenerator(base_url=chat_server, model="m", cache_dir=tmp_path / "cache", per_doc=3)
    assert [p.query for p in again.generate(docs)] == [p.query for p in pairs]
    assert again.requests_made == 0 and len(FakeChat.calls) == 3
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "sk-secret" not in cached


def test_openai_generator_gives_up_with_a_clear_error(tmp_path):
    gen = OpenAIGenerator(base_url="http://127.0.0.1:9/v1", model="m", cache_dir=tmp_path, retries=1, backoff=0.01, timeout=2)
    with pytest.raises(GeneratorError, match="failed after 2 attempts"):
        gen.generate([Document("d1", "x")])


def make_tiny_lm(path):
    """A tiny random Llama with a word-level tokenizer: stands in for SmolLM2 (the plumbing is real)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "<pad>"] + "kafka lag orders query document write a short search user would type to find this certs renew".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(path)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2, eos_token_id=1)).save_pretrained(path)
    return path


DOCS = [Document("d1", "kafka lag on orders", "Kafka"), Document("d2", "certs renew", "Certs"),
        Document("d3", "write a short document a user would type to find this kafka query", "Long")]


def test_local_generator_runs_a_causal_lm_from_disk(tmp_path):
    from embedops.trainer.generate import LocalGenerator

    import torch

    gen = LocalGenerator(make_tiny_lm(tmp_path / "lm"), per_doc=2, max_new_tokens=4)
    assert gen.device == ("cuda" if torch.cuda.is_available() else "cpu")  # the GPU when there is one
    pairs = gen.generate(DOCS[:1])
    assert 1 <= len(pairs) <= 2 and all(p.source == "local" and p.doc_id == "d1" and p.query for p in pairs)
    assert pairs[0].positive == "Kafka kafka lag on orders"


def test_local_generator_batches_give_the_same_queries_as_one_at_a_time(tmp_path):
    """Documents of different lengths share a left-padded batch: greedy answers must not change."""
    from embedops.trainer.generate import LocalGenerator

    gen = LocalGenerator(make_tiny_lm(tmp_path / "lm"), max_new_tokens=5, batch_size=1)
    one_by_one = [(p.doc_id, p.query) for p in gen.generate(DOCS)]
    gen.batch_size = 3
    seen = []
    batched = [(p.doc_id, p.query) for p in gen.generate(DOCS, on_progress=lambda d, t: seen.append((d, t)))]
    assert batched == one_by_one and len(batched) == 3
    assert seen == [(3, 3)]


def test_local_generator_resumes_from_its_cache_after_an_interruption(tmp_path):
    from embedops.trainer.generate import LocalGenerator

    gen = LocalGenerator(make_tiny_lm(tmp_path / "lm"), max_new_tokens=4, batch_size=1, cache_dir=tmp_path / "cache")
    calls = []
    real = gen.model.generate
    gen.model.generate = lambda **kw: calls.append(1) or real(**kw)

    def stop_after_first_batch(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gen.generate(DOCS, on_progress=stop_after_first_batch)
    assert len(calls) == 1
    progress = []
    resumed = gen.generate(DOCS, on_progress=lambda d, t: progress.append((d, t)))
    assert len(calls) == 3 and progress == [(2, 3), (3, 3)]  # only the two documents not yet done
    fresh = LocalGenerator(tmp_path / "lm", max_new_tokens=4, batch_size=3)
    assert resumed == fresh.generate(DOCS)  # the cache changes nothing but the cost
    again = gen.generate(DOCS)
    assert again == resumed and len(calls) == 3
    gen.max_new_tokens = 2  # other settings, other answers: not served from the cache
    gen.generate(DOCS[:1])
    assert len(calls) == 4


def test_local_generator_keeps_the_gguf_de_quantizing_bar_out_of_the_output(tmp_path, monkeypatch, capsys):
    """transformers loads a GGUF file under a bare tqdm bar that no Hugging Face setting silences; the
    loading is stood in for here (a tiny GGUF would need llama.cpp's converter), the bar is tqdm's own."""
    import transformers
    from tqdm.auto import tqdm

    from embedops.trainer.generate import LocalGenerator

    lm = make_tiny_lm(tmp_path / "lm")
    seen = []

    def gguf_loader(real):
        def load(path, *args, gguf_file=None, **kwargs):
            seen.append(gguf_file)
            for _ in tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
                pass
            return real(path, *args, **kwargs)
        return load

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", gguf_loader(transformers.AutoTokenizer.from_pretrained))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        gguf_loader(transformers.AutoModelForCausalLM.from_pretrained))
    gen = LocalGenerator(lm, gguf_file="model.gguf", max_new_tokens=3)
    assert seen == ["model.gguf", "model.gguf"] and not gen.seq2seq
    assert "de-quantizing" not in capsys.readouterr().err
    assert gen.generate(DOCS[:1])  # the model it loaded works


def test_local_generator_samples_several_queries_repeatably_and_uses_the_few_shot_examples(tmp_path):
    from embedops.trainer.generate import LocalGenerator

    examples = [("Statins lower LDL cholesterol in adults.", "statins reduce LDL")]
    gen = LocalGenerator(make_tiny_lm(tmp_path / "lm"), per_doc=3, max_new_tokens=4, temperature=1.0, seed=7,
                         few_shot=examples, batch_size=2)
    assert "statins reduce LDL" in gen._prompt("anything") and "Kafka consumer lag" not in gen._prompt("anything")
    first = gen.generate(DOCS)
    assert first == gen.generate(DOCS)  # seeded sampling
    assert {p.doc_id for p in first} <= {"d1", "d2", "d3"} and max(sum(p.doc_id == d for p in first) for d in "d1 d2 d3".split()) <= 3


def test_local_generator_runs_a_seq2seq_model_without_a_prompt(tmp_path):
    """A tiny random T5 stands in for a doc2query model: the document goes in as it is."""
    import torch
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration
    from tokenizers import Tokenizer, models, pre_tokenizers

    from embedops.trainer.generate import LocalGenerator

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>"] + "kafka lag on orders certs renew query".split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>", pad_token="<pad>").save_pretrained(tmp_path / "t5")
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(vocab), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                                             decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    t5.generation_config.suppress_tokens = [0, 2]  # random weights would answer <pad> forever
    t5.generation_config.min_new_tokens = 2
    t5.save_pretrained(tmp_path / "t5")
    gen = LocalGenerator(tmp_path / "t5", max_new_tokens=4, batch_size=1)
    assert gen.seq2seq and gen._prompt("Kafka kafka lag") == "Kafka kafka lag"
    one_by_one = gen.generate(DOCS)
    gen.batch_size = 3
    assert one_by_one and gen.generate(DOCS) == one_by_one and {p.doc_id for p in one_by_one} <= {"d1", "d2", "d3"}
    assert all(p.source == "local" and set(p.query.split()) <= set(vocab) for p in one_by_one)


def test_few_shot_file_errors_name_the_line_and_field(tmp_path):
    from embedops.trainer.generate import read_few_shot

    good = write_jsonl(tmp_path / "good.jsonl", [{"document": "Statins lower LDL.", "query": "statins LDL"}])
    assert read_few_shot(good) == [("Statins lower LDL.", "statins LDL")]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"document": "x", "query": "ok"}, {"document": "y", "query": ""}])
    with pytest.raises(InputError, match=r"bad.jsonl:2.*query"):
        read_few_shot(bad)
    with pytest.raises(InputError, match="no such few-shot file"):
        read_few_shot(tmp_path / "missing.jsonl")
