# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Timing worker for LeRobot 0.3.2's pi0 at the shapes of bench/peer_lerobot.py.

Runs in the peer venv that bench/peer_lerobot.py creates (LeRobot 0.3.2 needs transformers
4.51, the project needs 5.x), never in the project venv, and imports nothing of the project.
It reads one JSON request per line on stdin and answers one JSON line on stdout (see
bench/peer_lerobot.py for the protocol). Random weights, no hub: the model is built from tiny
configs (PI0FlowMatching directly; PI0Policy would download its tokenizer from the hub, and the
timed work is the model's: tokens are given as ids).
"""

import sys
import types

from peer_lerobot import serve  # noqa: I100 (bench/, this script's directory)
from peer_lerobot import timed
import torch


def load_pi0():
    """
    Import LeRobot's pi0 modules (and transformers) in this venv; give them as a namespace.

    Deferred to this function because of torchvision: PyPI's torchvision wheels are CUDA
    builds whose operator library links libtorch_cuda, which a CPU torch lacks; it fails to load
    and torchvision's import then dies registering fake kernels for two operators that do not
    exist. LeRobot imports torchvision at module load (for dataset transforms pi0 never uses).
    Declaring the two operator schemas first lets the pure-Python part of torchvision import;
    its C++ operators (nms, roi_align, ...) stay unavailable, and pi0 calls none of them.
    """
    lib = torch.library.Library('torchvision', 'DEF')
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    from lerobot.policies.pi0 import configuration_pi0
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0 import paligemma_with_expert
    import transformers
    return types.SimpleNamespace(
        library=lib, modeling=modeling_pi0, PI0Config=configuration_pi0.PI0Config,
        PaliGemmaWithExpertConfig=paligemma_with_expert.PaliGemmaWithExpertConfig,
        GemmaConfig=transformers.GemmaConfig, PaliGemmaConfig=transformers.PaliGemmaConfig)


def tiny_config_factory(pi0, shape):
    """Replace pi0's PaliGemma-3B + 300M-expert config by one at the bench shapes."""

    def make(**kwargs):
        cfg = pi0.PaliGemmaWithExpertConfig(**kwargs)  # default sub-configs, replaced below
        text = {'hidden_size': shape['vlm_width'], 'intermediate_size': shape['vlm_mlp'],
                'num_hidden_layers': shape['layers'], 'num_attention_heads': shape['heads'],
                'num_key_value_heads': shape['kv_heads'], 'head_dim': shape['head_dim'],
                'vocab_size': shape['vocab'], 'hidden_activation': 'gelu_pytorch_tanh',
                'model_type': 'gemma', 'torch_dtype': 'float32'}
        vision = {'hidden_size': shape['vision_width'], 'intermediate_size': shape['vision_mlp'],
                  'num_hidden_layers': shape['vision_layers'],
                  'num_attention_heads': shape['vision_heads'],
                  'image_size': shape['image_size'], 'patch_size': shape['patch_size'],
                  'model_type': 'siglip_vision_model', 'vision_use_head': False,
                  'projection_dim': shape['vlm_width']}
        cfg.paligemma_config = pi0.PaliGemmaConfig(
            text_config=text, vision_config=vision, projection_dim=shape['vlm_width'],
            hidden_size=shape['vlm_width'], image_token_index=shape['vocab'] - 1,
            vocab_size=shape['vocab'])
        cfg.gemma_expert_config = pi0.GemmaConfig(
            hidden_size=shape['expert_width'], intermediate_size=shape['expert_mlp'],
            num_hidden_layers=shape['layers'], num_attention_heads=shape['heads'],
            num_key_value_heads=shape['kv_heads'], head_dim=shape['head_dim'],
            vocab_size=shape['vocab'], hidden_activation='gelu_pytorch_tanh')
        return cfg

    return make


class Pi0Bench:
    """pi0 model + fixed inputs; `run` answers one timing request."""

    def __init__(self, shape):
        pi0 = load_pi0()
        self.pi0 = pi0
        modeling_pi0 = pi0.modeling
        modeling_pi0.PaliGemmaWithExpertConfig = tiny_config_factory(pi0, shape)
        torch.manual_seed(0)
        config = pi0.PI0Config(
            chunk_size=shape['chunk'], n_action_steps=shape['chunk'], num_steps=shape['steps'],
            proj_width=shape['expert_width'], tokenizer_max_length=shape['text_tokens'],
            max_state_dim=shape['state_dim'], max_action_dim=shape['action_dim'],
            freeze_vision_encoder=False, train_expert_only=False)
        self.config = config
        self.model = modeling_pi0.PI0FlowMatching(config)  # bf16 layers as LeRobot keeps them
        self.shape = shape

    def inputs(self, batch):
        s = self.shape
        g = torch.Generator().manual_seed(0)
        images = [torch.rand((batch, 3, s['image_size'], s['image_size']), generator=g) * 2 - 1]
        img_masks = [torch.ones(batch, dtype=torch.bool)]
        tokens = torch.randint(3, s['vocab'] - 1, (batch, s['text_tokens']), generator=g)
        masks = torch.ones_like(tokens, dtype=torch.bool)
        state = torch.randn((batch, s['state_dim']), generator=g)
        actions = torch.randn((batch, s['chunk'], s['action_dim']), generator=g)
        return images, img_masks, tokens, masks, state, actions

    def params(self):
        return sum(p.numel() for p in self.model.parameters())

    def dtype(self):
        return str(self.model.paligemma_with_expert.paligemma.dtype)

    def infer(self, repeats, warmup, clock):
        m = self.model.eval()
        images, img_masks, tokens, masks, state, _ = self.inputs(1)
        s = self.shape
        noise = torch.randn((1, s['chunk'], s['action_dim']), generator=torch.Generator()
                            .manual_seed(1))

        def prefix():
            embs, pad, att = m.embed_prefix(images, img_masks, tokens, masks)
            att2 = self.pi0.modeling.make_att_2d_masks(pad, att)
            pos = torch.cumsum(pad, dim=1) - 1
            _, kv = m.paligemma_with_expert.forward(
                attention_mask=att2, position_ids=pos, past_key_values=None,
                inputs_embeds=[embs, None], use_cache=True, fill_kv_cache=True)
            return pad, kv

        with torch.inference_mode():
            pad, kv = prefix()
            t = torch.ones(1)

            def step():
                return m.denoise_step(state, pad, kv, noise, t)

            def chunk():
                return m.sample_actions(images, img_masks, tokens, masks, state,
                                        noise=noise.clone())

            return {'prefix_s': timed(prefix, repeats, warmup, clock),
                    'step_s': timed(step, repeats, warmup, clock),
                    'chunk_s': timed(chunk, repeats, warmup, clock), 'tokens': int(pad.shape[1])}

    def train(self, repeats, batch, warmup, clock):
        m = self.model.train()
        images, img_masks, tokens, masks, state, actions = self.inputs(batch)

        def step():
            loss = m.forward(images, img_masks, tokens, masks, state, actions).mean()
            loss.backward()
            m.zero_grad(set_to_none=True)

        return {'train_s': timed(step, repeats, warmup, clock)}


def main():
    return serve(Pi0Bench)


if __name__ == '__main__':
    sys.exit(main())
