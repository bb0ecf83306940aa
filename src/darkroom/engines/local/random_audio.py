"""A tiny MusicGen (T5 text encoder, EnCodec audio codec, the MusicGen decoder) built from small
configurations with random weights and saved like a hub model, for tests: the real model's
code path (text encoding, token-by-token decoding with guidance, EnCodec decoding) at a size a
CPU runs in seconds. Its "music" is noise."""

from __future__ import annotations

from pathlib import Path

from darkroom.engines.local.random_weights import (
    _seeded,
    save_atomically,
    t5_tokenizer,
    tiny_t5_config,
)

SAMPLING_RATE = 16000  # the tiny codec's; MusicGen's own is 32 kHz


def build_musicgen(folder: Path) -> Path:
    """Builds the tiny MusicGen with its tokenizer into `folder` (once)."""
    if not (folder / "config.json").exists():
        save_atomically(_Saved(), folder)
    return folder


class _Saved:
    """The model and its tokenizer, saved into one folder as the hub's musicgen-small is."""

    def save_pretrained(self, folder: Path) -> None:
        from transformers import (
            EncodecConfig,
            MusicgenConfig,
            MusicgenDecoderConfig,
            MusicgenForConditionalGeneration,
        )

        _seeded()
        tokenizer = t5_tokenizer()
        text = tiny_t5_config(tokenizer, d_model=32)
        # 16 kHz in frames of 320 samples: 50 frames a second, as MusicGen's codec has.
        codec = EncodecConfig(
            target_bandwidths=[2.0],
            sampling_rate=SAMPLING_RATE,
            audio_channels=1,
            num_filters=4,
            num_residual_layers=1,
            upsampling_ratios=[8, 5, 4, 2],
            codebook_size=64,
            hidden_size=16,
            num_lstm_layers=1,
            codebook_dim=16,
        )
        decoder = MusicgenDecoderConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            ffn_dim=64,
            num_codebooks=codec.num_quantizers,
            max_position_embeddings=2048,
            pad_token_id=64,  # MusicGen's: one past the codebook, as musicgen-small's 2048
            bos_token_id=64,
        )
        config = MusicgenConfig(
            text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict()
        )
        MusicgenForConditionalGeneration(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
