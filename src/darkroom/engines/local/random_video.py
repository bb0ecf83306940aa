"""Tiny text-to-video pipelines (LTX-Video, Wan 2.x) built from small configurations with random
weights and saved like a hub model, for tests and the CPU benchmark (bench/video.py), as
random_weights.py builds the image families. They run the real pipelines' code paths (T5 text
encoder, video transformer, causal video VAE, flow-matching scheduler) in well under a second
on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darkroom.engines.local.random_weights import (
    T5_DIM,
    _flow_match,
    _seeded,
    _t5_encoder,
    save_atomically,
    t5_tokenizer,
)

VIDEO_FAMILIES = ("ltx", "wan")


def build_video(family: str, folder: Path) -> Path:
    """Builds the family's tiny video pipeline into `folder` (once; concurrent builders agree)."""
    if not (folder / "model_index.json").exists():
        save_atomically(_BUILDERS[family](), folder)
    return folder


def _ltx() -> Any:
    from diffusers import AutoencoderKLLTXVideo, LTXPipeline, LTXVideoTransformer3DModel

    _seeded()
    t5 = t5_tokenizer()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=T5_DIM,
    )
    # Compresses 4x in space and 4x in time (two spatio-temporal blocks of four).
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return LTXPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=_t5_encoder(t5, T5_DIM),
        tokenizer=t5,
        scheduler=_flow_match(),
    )


def _wan() -> Any:
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    _seeded()
    t5 = t5_tokenizer()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=T5_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    # Compresses 8x in space and 4x in time, like Wan 2.1's VAE, at a few channels.
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    # Wan's text encoder is UMT5 (T5 with relative attention in every layer).
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(t5),
            d_model=T5_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=t5.pad_token_id,
            eos_token_id=t5.eos_token_id,
        )
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    return WanPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=t5,
        scheduler=scheduler,
    )


_BUILDERS = {"ltx": _ltx, "wan": _wan}
