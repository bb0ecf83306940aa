"""Tiny pipelines of each family the diffusers engine supports (SD 1.5, SDXL, SD 3, FLUX), built
from small configurations with random weights and saved like a hub model, for tests and the
CPU benchmark. They share the real architectures' code paths (text encoders, tokenizers, UNet or
transformer, VAE, scheduler) at a size a CPU runs in milliseconds.

Tokenizers are built offline: CLIP's from a byte-level vocabulary with no merges, T5's from a
Unigram vocabulary of single characters.
"""

from __future__ import annotations

import os
import shutil
import string
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUILD_SEED = 0
FAMILIES = ("sd15", "sdxl", "sd3", "flux")
TEXT_DIM = 32  # hidden size of the tiny CLIP encoders
T5_DIM = 64


def build(family: str, folder: Path) -> Path:
    """Builds the family's tiny pipeline into `folder` (once; concurrent builders agree)."""
    if not (folder / "model_index.json").exists():
        save_atomically(_BUILDERS[family](), folder)
    return folder


def save_atomically(pipeline: Any, folder: Path) -> None:
    """Saves aside then renames, so processes starting at once never see half a folder."""
    draft = folder.with_name(f".{folder.name}-{os.getpid()}-{threading.get_ident()}")
    pipeline.save_pretrained(draft)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        draft.rename(folder)
    except OSError:
        shutil.rmtree(draft, ignore_errors=True)  # another process finished first


# -- tokenizers and shared parts -------------------------------------------------------------


def clip_tokenizer() -> Any:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_byte_vocab(ByteLevel.alphabet()), merges=[], model_max_length=77)


def _byte_vocab(alphabet: list[str]) -> dict[str, int]:
    """A CLIP vocabulary with no merges: every byte alone, and as a word's last byte."""
    symbols = sorted(alphabet)
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def t5_tokenizer() -> Any:
    from transformers import T5Tokenizer

    chars = sorted(set(string.printable) - set(string.whitespace))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("\u2581" + c, -3.5) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _clip_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TEXT_DIM,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _t5_encoder(tokenizer: Any, d_model: int) -> Any:
    from transformers import T5EncoderModel

    return T5EncoderModel(tiny_t5_config(tokenizer, d_model))


def tiny_t5_config(tokenizer: Any, d_model: int = T5_DIM, config_class: Any = None) -> Any:
    """The tiny T5 text encoder's configuration, for `tokenizer` (t5_tokenizer): the one the
    image and video families and MusicGen share, `d_model` wide; as `config_class` (T5Config
    by default; Wan's UMT5Config takes the same fields)."""
    from transformers import T5Config

    return (config_class or T5Config)(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _vae(latent_channels: int, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    # Four blocks: the VAE downsamples by 8 like the real ones, so latents stay small.
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=128,
        **extra,
    )


def _unet(**extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    # Two blocks, the second with cross-attention: SD 1.5's and SDXL's UNet at a small size.
    return UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        **extra,
    )


# -- the families ----------------------------------------------------------------------------


def _sd15() -> Any:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    _seeded()
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(_clip_config(tokenizer))
    unet = _unet(cross_attention_dim=TEXT_DIM, attention_head_dim=4)
    return StableDiffusionPipeline(
        vae=_vae(4),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_euler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl() -> Any:
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    _seeded()
    tokenizer = clip_tokenizer()
    time_dim = 8
    unet = _unet(
        attention_head_dim=(4, 8),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # Six size/crop numbers embedded, plus the second encoder's pooled projection.
        projection_class_embeddings_input_dim=6 * time_dim + TEXT_DIM,
        cross_attention_dim=2 * TEXT_DIM,  # both encoders' hidden states, side by side
    )
    return StableDiffusionXLPipeline(
        vae=_vae(4),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=_euler(),
    )


def _sd3() -> Any:
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    _seeded()
    tokenizer = clip_tokenizer()
    t5 = t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=T5_DIM,  # the T5 width; CLIP states are padded up to it
        pooled_projection_dim=2 * TEXT_DIM,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        vae=_vae(4, shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=CLIPTextModelWithProjection(_clip_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer)),
        text_encoder_3=_t5_encoder(t5, T5_DIM),
        tokenizer=tokenizer,
        tokenizer_2=clip_tokenizer(),
        tokenizer_3=t5,
        scheduler=_flow_match(),
    )


def _flux() -> Any:
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    _seeded()
    tokenizer = clip_tokenizer()
    t5 = t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2 x 2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_DIM,
        pooled_projection_dim=TEXT_DIM,
        axes_dims_rope=(4, 4, 8),
        guidance_embeds=False,  # like FLUX.1-schnell
    )
    return FluxPipeline(
        transformer=transformer,
        vae=_vae(4, shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        text_encoder_2=_t5_encoder(t5, T5_DIM),
        tokenizer=tokenizer,
        tokenizer_2=t5,
        scheduler=_flow_match(),
    )


def _seeded() -> Any:
    import torch

    torch.manual_seed(BUILD_SEED)
    return torch


def _euler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",
    )


def _flow_match() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=3.0)


_BUILDERS: dict[str, Callable[[], Any]] = {
    "sd15": _sd15,
    "sdxl": _sdxl,
    "sd3": _sd3,
    "flux": _flux,
}
