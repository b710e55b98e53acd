"""The shipped model's dense weights (every token on expert 0: the routers and pooling dropped) as an F16 GGUF for
llama.cpp's "llama" architecture, written with gguf-py (PyPI). Input: a checkpoint from
`python -m mixsga from_onnx models/default CKPT` (the fp16 CUDA file's weights) and the model folder (tokenizer).

llama.cpp applies RoPE to interleaved pairs for this architecture while the model (Hugging Face Llama) rotates
halves, so q_proj/k_proj rows are permuted as convert_hf_to_gguf.py does. The vocabulary comes from
tokenizer.json through gguf-py's LlamaHfVocab (SentencePiece-style BPE with byte fallback).

Usage: PYTHONPATH=toolchain:CACHE/py python lab/llama-cpp/write_gguf.py CKPT MODEL_DIR OUT.gguf
"""
import sys
from pathlib import Path

import gguf
import numpy as np

from mixsga.checkpoint import load_checkpoint


def permute(w, n_head):
    """Rows of a q/k projection from rotate-half order to llama.cpp's interleaved RoPE order."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(ckpt, model_dir, out):
    model = load_checkpoint(ckpt)
    cfg = model.cfg
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("mixsga-default (dense, expert 0)")
    for add, value in [(w.add_context_length, cfg.max_position_embeddings), (w.add_embedding_length, cfg.hidden_size),
                       (w.add_block_count, cfg.num_layers), (w.add_feed_forward_length, cfg.intermediate_size),
                       (w.add_head_count, cfg.num_attention_heads), (w.add_head_count_kv, cfg.num_kv_heads),
                       (w.add_key_length, cfg.head_dim), (w.add_value_length, cfg.head_dim),
                       (w.add_rope_dimension_count, cfg.head_dim), (w.add_rope_freq_base, cfg.rope_theta),
                       (w.add_layer_norm_rms_eps, cfg.rms_norm_eps), (w.add_vocab_size, cfg.vocab_size),
                       (w.add_file_type, gguf.LlamaFileType.MOSTLY_F16)]:
        add(value)
    vocab = gguf.LlamaHfVocab(Path(model_dir))
    tokens, scores, types = [], [], []
    for text, score, ttype in vocab.all_tokens():
        tokens.append(text), scores.append(score), types.append(ttype)
    tokens += [f"[PAD{i}]".encode() for i in range(cfg.vocab_size - len(tokens))]  # rows past the tokenizer's
    scores += [-1000.0] * (cfg.vocab_size - len(scores))
    types += [gguf.TokenType.UNUSED] * (cfg.vocab_size - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    gguf.SpecialVocab(Path(model_dir), load_merges=False, n_vocab=cfg.vocab_size).add_to_gguf(w)
    # FIM tokens for llama-server's /infill (the manifest's ids)
    import json
    fim = json.loads((Path(model_dir) / "manifest.json").read_text())["fim"]
    w.add_uint32("tokenizer.ggml.fim_pre_token_id", fim["prefix_id"])
    w.add_uint32("tokenizer.ggml.fim_suf_token_id", fim["suffix_id"])
    w.add_uint32("tokenizer.ggml.fim_mid_token_id", fim["middle_id"])
    w.add_uint32("tokenizer.ggml.fim_pad_token_id", fim["pad_id"])
    w.add_uint32("tokenizer.ggml.fim_sep_token_id", fim["file_sep_id"])

    f16 = lambda a: np.ascontiguousarray(a, dtype=np.float16)  # noqa: E731
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731 (norms stay fp32, as convert does)
    w.add_tensor("token_embd.weight", f16(sd["model.embed_tokens.weight"]))
    w.add_tensor("output_norm.weight", f32(sd["model.norm.weight"]))
    if not cfg.tie_word_embeddings:
        w.add_tensor("output.weight", f16(sd["lm_head.weight"]))
    for l in range(cfg.num_layers):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        w.add_tensor(b + "attn_norm.weight", f32(sd[p + "input_layernorm.weight"]))
        w.add_tensor(b + "attn_q.weight", f16(permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads)))
        w.add_tensor(b + "attn_k.weight", f16(permute(sd[p + "self_attn.k_proj.weight"], cfg.num_kv_heads)))
        w.add_tensor(b + "attn_v.weight", f16(sd[p + "self_attn.v_proj.weight"]))
        w.add_tensor(b + "attn_output.weight", f16(sd[p + "self_attn.o_proj.weight"]))
        w.add_tensor(b + "ffn_norm.weight", f32(sd[p + "post_attention_layernorm.weight"]))
        w.add_tensor(b + "ffn_gate.weight", f16(sd[p + "mlp.gate_proj.weight"]))
        w.add_tensor(b + "ffn_up.weight", f16(sd[p + "mlp.up_proj.weight"]))
        w.add_tensor(b + "ffn_down.weight", f16(sd[p + "mlp.down_proj.weight"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
