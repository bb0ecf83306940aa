"""Tiny video pipelines (LTX-Video, Wan 2.x) built from small configurations with random weights
and saved like a hub model, for tests and the CPU benchmark (bench/video.py), as
random_weights.py builds the image families. They run the real pipelines' code paths (T5 text
encoder, video transformer, causal video VAE, flow-matching scheduler) in well under a second
on a CPU.

Text-to-video folders (VIDEO_FAMILIES): `ltx` (LTXPipeline, which also starts clips from a
first frame) and `wan` (WanPipeline as Wan 2.1 T2V: text only). The image-to-video shapes of
the hub's checkpoints (FIRST_FRAME_VARIANTS): `ltx-i2v` (the same weights saved as
LTXImageToVideoPipeline), `wan-ti2v` (Wan 2.2 TI2V-5B: a WanPipeline whose `expand_timesteps`
lets one transformer take text or a first frame) and `wan-i2v` (Wan 2.1 I2V-14B: a
WanImageToVideoPipeline whose transformer takes the first frame's latents beside the noise,
and a CLIP image encoder)."""

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
    tiny_t5_config,
)

VIDEO_FAMILIES = ("ltx", "wan")
FIRST_FRAME_VARIANTS = ("ltx", "ltx-i2v", "wan-ti2v", "wan-i2v")

# A random VAE shrinks its input layer by layer until every picture decodes alike; this gain on
# the tiny Wan VAE's weights keeps enough of a first frame through it for a test to see.
WAN_VAE_GAIN = 1.5


def build_video(family: str, folder: Path) -> Path:
    """Builds the family's (or variant's) tiny video pipeline into `folder` (once; concurrent
    builders agree)."""
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
    from diffusers import WanPipeline

    _seeded()
    return WanPipeline(transformer=_wan_transformer(in_channels=16), **_wan_parts())


def _wan_transformer(in_channels: int, image_dim: int | None = None) -> Any:
    from diffusers import WanTransformer3DModel

    heads, head_dim = 2, 12
    image = (
        {} if image_dim is None else {"image_dim": image_dim, "added_kv_proj_dim": heads * head_dim}
    )
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=16,
        text_dim=T5_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        **image,
    )


def _wan_parts() -> dict[str, Any]:
    """Wan's VAE, text encoder, tokenizer and scheduler: the same in every Wan pipeline."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    t5 = t5_tokenizer()
    # Compresses 8x in space and 4x in time, like Wan 2.1's VAE, at a few channels.
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    with torch.no_grad():
        for weight in vae.parameters():
            if weight.ndim >= 4:  # convolutions' kernels
                weight.mul_(WAN_VAE_GAIN)
    # Wan's text encoder is UMT5 (T5 with relative attention in every layer).
    text_encoder = UMT5EncoderModel(tiny_t5_config(t5, config_class=UMT5Config))
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": t5, "scheduler": scheduler}


def _ltx_i2v() -> Any:
    from diffusers import LTXImageToVideoPipeline

    return LTXImageToVideoPipeline(**_ltx().components)


def _wan_ti2v() -> Any:
    """Wan 2.2 TI2V-5B's shape: a first frame replaces the first latent frame, so the
    text-to-video transformer serves both kinds of task."""
    from diffusers import WanPipeline

    return WanPipeline(**_wan().components, expand_timesteps=True)


def _wan_i2v() -> Any:
    """Wan 2.1 I2V-14B's shape: the transformer reads the noise, a mask of the given frames and
    their latents (16 + 4 + 16 channels), and CLIP image features beside the text."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    _seeded()
    image_dim = 8
    encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=image_dim,
            projection_dim=image_dim,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=4,
        )
    )
    return WanImageToVideoPipeline(
        **_wan_parts(),
        transformer=_wan_transformer(in_channels=36, image_dim=image_dim),
        image_encoder=encoder,
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32),
    )


_BUILDERS = {
    "ltx": _ltx,
    "wan": _wan,
    "ltx-i2v": _ltx_i2v,
    "wan-ti2v": _wan_ti2v,
    "wan-i2v": _wan_i2v,
}
