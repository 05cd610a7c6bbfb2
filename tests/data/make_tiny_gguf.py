"""make_tiny_gguf: writes a tiny but valid llama-architecture GGUF model with gguf-py: random
weights (2 layers, 64 wide), a real byte-level BPE tokenizer (GPT-2's 256 byte symbols plus a
few merges) and a ChatML chat template. llama.cpp loads and runs it; what it generates is
random printable text (the output rows of non-printable tokens are zero, so greedy decoding
never picks them, nor the end-of-text token: it always writes max_tokens tokens).

Run with the runtimes venv's python (scripts/runtimes.sh installs gguf):
    make_tiny_gguf.py OUT.gguf [SEED]
Two seeds give two different models (a canary between two revisions)."""
import sys

import numpy as np
import gguf

out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
rng = np.random.default_rng(seed)

# GPT-2's byte <-> unicode mapping: every byte is one printable symbol.
printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
    list(range(ord("®"), ord("ÿ") + 1))
byte_to_char = {}
extra = 0
for b in range(256):
    if b in printable:
        byte_to_char[b] = chr(b)
    else:
        byte_to_char[b] = chr(256 + extra)
        extra += 1
tokens = [byte_to_char[b] for b in range(256)]
merges = []
for pair in ["Ġ t", "h e", "i n", "e r", "a n", "o n", "r e", "Ġ a", "Ġt he", "e n", "o r", "a t"]:
    left, right = pair.split(" ")
    merges.append(pair)
    tokens.append(left + right)
eot = len(tokens)
tokens.append("<|endoftext|>")
im_start = len(tokens)
tokens.append("<|im_start|>")
im_end = len(tokens)
tokens.append("<|im_end|>")
types = [gguf.TokenType.NORMAL] * eot + [gguf.TokenType.CONTROL] * 3
n_vocab = len(tokens)

n_embd, n_head, n_layer, n_ff, n_ctx = 64, 4, 2, 128, 2048
w = gguf.GGUFWriter(out, "llama")
w.add_name("ksv-tiny-%d" % seed)
w.add_context_length(n_ctx)
w.add_embedding_length(n_embd)
w.add_block_count(n_layer)
w.add_feed_forward_length(n_ff)
w.add_head_count(n_head)
w.add_head_count_kv(n_head)
w.add_rope_dimension_count(n_embd // n_head)
w.add_layer_norm_rms_eps(1e-5)
w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("default")
w.add_token_list(tokens)
w.add_token_types(types)
w.add_token_merges(merges)
w.add_bos_token_id(eot)
w.add_eos_token_id(im_end)
w.add_add_bos_token(False)
w.add_chat_template(
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def t(*shape, scale=0.02):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


w.add_tensor("token_embd.weight", t(n_vocab, n_embd, scale=1.0))
w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
output = t(n_vocab, n_embd, scale=1.0)
for i in range(n_vocab):
    if i >= eot or (i < 256 and not (0x20 < i < 0x7f)):
        output[i] = 0  # never generated: control tokens, non-ASCII and whitespace bytes
for layer in range(n_layer):
    p = "blk.%d." % layer
    w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor(p + "attn_q.weight", t(n_embd, n_embd))
    w.add_tensor(p + "attn_k.weight", t(n_embd, n_embd))
    w.add_tensor(p + "attn_v.weight", t(n_embd, n_embd))
    w.add_tensor(p + "attn_output.weight", t(n_embd, n_embd))
    w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor(p + "ffn_gate.weight", t(n_ff, n_embd))
    w.add_tensor(p + "ffn_up.weight", t(n_ff, n_embd))
    w.add_tensor(p + "ffn_down.weight", t(n_embd, n_ff))
w.add_tensor("output.weight", output)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
