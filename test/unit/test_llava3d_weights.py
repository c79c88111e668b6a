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
Pretrained weights: LLaVA-3D checkpoints as released, pretrained parts in any dtype, conversion.

The fake LLaVA-3D checkpoint is built from real transformers / torch modules and written the
way LLaVA-3D-7B is released: bf16 tensors in several safetensors shards plus
model.safetensors.index.json, the CLIP tower under the transformers 4.37 names
(model.vision_tower.vision_tower.vision_model.*), the tokenizer beside the shards.
"""

import dataclasses
import json
import os

from demo_bags import generate_demos
import pytest
from repo_paths import REPO_ROOT
from safetensors.torch import save_file
from spatialvla_ros.models.checkpoint import CheckpointError
from spatialvla_ros.models.checkpoint import load_checkpoint
from spatialvla_ros.models.checkpoint import model_tensors
from spatialvla_ros.models.fusion_common import build_transformer
from spatialvla_ros.models.llava3d_weights import load_llava3d_weights
from spatialvla_ros.models.llava3d_weights import map_llava3d_name
from spatialvla_ros.models.modeling_encoder3d import build_vision_tower
from spatialvla_ros.models.modeling_spatialvla import ModelBatch
from spatialvla_ros.models.modeling_spatialvla import ModelObservation
from spatialvla_ros.models.modeling_spatialvla import SpatialVLAModel
from spatialvla_ros.sim.vocabulary import build_demo_tokenizer
from spatialvla_ros.tools import convert_llava3d
from spatialvla_ros.training.configuration_training import TrainingConfig
import torch
from torch import nn
import transformers

REPO = REPO_ROOT
CONFIG_DIR = os.path.join(REPO, 'config')
TOWER_437 = 'model.vision_tower.vision_tower.vision_model.'
POS_HEAD = 'model.video_tower.video_tower.positional_embedding.position_embedding_head.'


def config(plan='deep_fusion', **sections):
    cfg = TrainingConfig.from_yaml(os.path.join(CONFIG_DIR, f'{plan}.yaml'))
    changes = {k: dataclasses.replace(getattr(cfg, k), **v) for k, v in sections.items()}
    return dataclasses.replace(cfg, **changes).validate()


def reference_parts(cfg, seed=7):
    """Build the transformers / torch modules a LLaVA-3D checkpoint of cfg's shapes holds."""
    torch.manual_seed(seed)
    llama = build_transformer(cfg.language_model).eval()     # a transformers LlamaModel
    clip = build_vision_tower(cfg.vision).eval()             # a transformers CLIPVisionModel
    assert isinstance(llama, transformers.LlamaModel)
    assert isinstance(clip, transformers.CLIPVisionModel)
    c, d = cfg.vision.hidden_size, cfg.language_model.hidden_size
    # LLaVA-3D's PositionEmbeddingLearnedMLP head and mlp2x_gelu projector layouts
    pos_head = nn.Sequential(nn.Linear(3, c), nn.LayerNorm(c), nn.ReLU(), nn.Linear(c, c))
    projector = nn.Sequential(nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
    # Released in bf16: the references hold the bf16 values (exact in float32 again). Only
    # the parameters: a cast of the module would round the RoPE buffer too.
    with torch.no_grad():
        for module in (llama, clip, pos_head, projector):
            for param in module.parameters():
                param.copy_(param.to(torch.bfloat16))
    return {'llama': llama, 'clip': clip, 'pos_head': pos_head, 'projector': projector}


def released_tensors(parts, tower_prefix=TOWER_437, dtype=torch.bfloat16):
    """LLaVA-3D tensor names -> bf16 tensors, as LlavaLlamaForCausalLM saves them."""
    out = {f'model.{k}': v for k, v in parts['llama'].state_dict().items()}
    out.update({tower_prefix + k: v for k, v in parts['clip'].state_dict().items()})
    out.update({POS_HEAD + k: v for k, v in parts['pos_head'].state_dict().items()})
    out.update({f'model.mm_projector.{k}': v for k, v in parts['projector'].state_dict().items()})
    d = parts['llama'].config.hidden_size
    out['lm_head.weight'] = torch.randn(parts['llama'].config.vocab_size, d)
    out['model.video_tower.prompt_encoder.pos_emb3d.position_embedding_head.0.weight'] = \
        torch.randn(d, 3)
    if dtype is None:
        return out
    return {k: v.to(dtype).contiguous() for k, v in out.items()}


def write_released(directory, tensors, num_shards=3, tokenizer=True):
    """Sharded safetensors + model.safetensors.index.json (+ tokenizer), as released."""
    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    weight_map = {}
    for i in range(num_shards):
        shard = f'model-{i + 1:05d}-of-{num_shards:05d}.safetensors'
        part = names[i::num_shards]
        save_file({k: tensors[k] for k in part}, os.path.join(directory, shard),
                  metadata={'format': 'pt'})
        weight_map.update({k: shard for k in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(directory, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f)
    if tokenizer:
        build_demo_tokenizer(str(directory))
    return str(directory)


def assert_holds(model, parts):
    for ours, ref in ((model.vlm, parts['llama']), (model.encoder3d.vision_tower, parts['clip']),
                      (model.encoder3d.position_embedding.position_embedding_head,
                       parts['pos_head']),
                      (model.encoder3d.mm_projector, parts['projector'])):
        ref_sd = ref.state_dict()
        for key, value in ours.state_dict().items():
            assert torch.equal(value, ref_sd[key]), key


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    cfg = config()
    parts = reference_parts(cfg)
    tensors = released_tensors(parts)
    directory = write_released(tmp_path_factory.mktemp('llava3d'), tensors)
    return cfg, parts, tensors, directory


def test_released_checkpoint_loads_every_encoder_and_vlm_tensor(released):
    cfg, parts, tensors, directory = released
    # The names exactly as a transformers 4.37 LLaVA-3D checkpoint has them.
    for name in (TOWER_437 + 'embeddings.class_embedding',
                 TOWER_437 + 'embeddings.patch_embedding.weight',
                 TOWER_437 + 'pre_layrnorm.weight', TOWER_437 + 'post_layernorm.bias',
                 TOWER_437 + 'encoder.layers.1.self_attn.q_proj.weight',
                 TOWER_437 + 'encoder.layers.0.mlp.fc2.bias', POS_HEAD + '3.weight',
                 'model.mm_projector.2.weight', 'model.layers.1.mlp.down_proj.weight',
                 'model.embed_tokens.weight', 'model.norm.weight'):
        assert name in tensors, name
    torch.manual_seed(0)
    model = SpatialVLAModel(cfg).eval()
    report = load_llava3d_weights(model, directory)
    assert report['missing'] == []
    assert report['unused'] == ['lm_head.weight', 'model.video_tower.prompt_encoder.pos_emb3d.'
                                'position_embedding_head.0.weight']
    assert_holds(model, parts)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    counts = {p['part']: (p['tensors'], p['total']) for p in report['parts']}
    tower = len(parts['clip'].state_dict())
    assert counts['vision tower'] == (tower, tower) and tower == 2 * 16 + 7
    assert counts['VLM'][0] == counts['VLM'][1] == len(parts['llama'].state_dict())
    assert 'transformers 4.37' in report['parts'][0]['source']
    # the mapped tower and VLM compute what the transformers references compute
    pixels = torch.rand(2, 3, cfg.vision.image_size, cfg.vision.image_size)
    ids = torch.randint(0, cfg.language_model.vocab_size, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(
            model.encoder3d.vision_tower(pixel_values=pixels).last_hidden_state,
            parts['clip'](pixel_values=pixels).last_hidden_state, rtol=0, atol=0)
        torch.testing.assert_close(model.vlm(input_ids=ids).last_hidden_state,
                                   parts['llama'](input_ids=ids).last_hidden_state,
                                   rtol=0, atol=0)


def test_names_cover_the_7b_preset_with_llava3d_7b_shapes():
    """Every encoder / VLM tensor of the real-size preset has its LLaVA-3D-7B source, shaped."""
    cfg = TrainingConfig.from_yaml(os.path.join(CONFIG_DIR, 'llava3d_7b_deep_fusion.yaml'))
    with torch.device('meta'):   # shapes only: no 7B of memory
        model = SpatialVLAModel(cfg)
        # LLaVA-3D-7B: a Llama-2-7B and openai's CLIP ViT-L/14-336, as transformers builds them
        llama = transformers.LlamaModel(transformers.LlamaConfig(
            vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32))
        clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
            num_attention_heads=16, image_size=336, patch_size=14))
        pos_head = nn.Sequential(nn.Linear(3, 1024), nn.LayerNorm(1024), nn.ReLU(),
                                 nn.Linear(1024, 1024))
        projector = nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096))
        source = released_tensors({'llama': llama, 'clip': clip, 'pos_head': pos_head,
                                   'projector': projector}, dtype=None)
    targets = {k: v for k, v in model_tensors(model).items()
               if k.startswith(('encoder3d.', 'vlm.'))}
    mapped = {map_llava3d_name(k): tuple(v.shape) for k, v in source.items()
              if map_llava3d_name(k) in targets}
    assert mapped == {k: tuple(v.shape) for k, v in targets.items()}
    tower = [k for k in source if k.startswith(TOWER_437)]
    assert len(tower) == 391
    assert sum(source[k].numel() for k in tower) == 303_507_456


def test_transformers5_names_load_too(released, tmp_path):
    cfg, parts, _, _ = released
    tensors = released_tensors(parts, tower_prefix='model.vision_tower.vision_tower.')
    directory = write_released(tmp_path, tensors, num_shards=1, tokenizer=False)
    model = SpatialVLAModel(cfg)
    report = load_llava3d_weights(model, directory)
    assert report['missing'] == [] and 'transformers 5' in report['parts'][0]['source']
    assert_holds(model, parts)
    both = dict(tensors, **released_tensors(parts))     # the same tower under both names
    write_released(tmp_path / 'both', both, num_shards=2, tokenizer=False)
    with pytest.raises(CheckpointError, match='given twice'):
        load_llava3d_weights(model, tmp_path / 'both')


def test_unset_tensors_are_an_error_naming_them_unless_allowed(released, tmp_path):
    cfg, parts, tensors, _ = released
    without_tower = {k: v for k, v in tensors.items() if not k.startswith(TOWER_437)}
    directory = write_released(tmp_path / 'no_tower', without_tower, tokenizer=False)
    model = SpatialVLAModel(cfg)
    with pytest.raises(CheckpointError, match=r'vision tower 39/39') as err:
        load_llava3d_weights(model, directory)
    assert 'encoder3d.vision_tower.embeddings.class_embedding' in str(err.value)
    assert directory in str(err.value)
    report = load_llava3d_weights(model, directory, allow_missing=True)
    assert len(report['missing']) == 39
    assert all(n.startswith('encoder3d.vision_tower.') for n in report['missing'])
    # the tower from its own folder (vision.pretrained_path): nothing is left unset
    tower_dir = str(tmp_path / 'clip')
    parts['clip'].save_pretrained(tower_dir)
    with_tower = config(vision={'pretrained_path': tower_dir})
    model = SpatialVLAModel(with_tower)
    report = load_llava3d_weights(model, directory)
    assert report['missing'] == [] and tower_dir in report['parts'][0]['source']
    assert_holds(model, parts)
    # a mis-shaped tensor is named; a directory of something else maps nothing
    save_file({'model.norm.weight': torch.ones(cfg.language_model.hidden_size + 1)},
              tmp_path / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'model\.norm\.weight -> vlm\.norm\.weight'):
        load_llava3d_weights(model, tmp_path)
    other = tmp_path / 'other'
    other.mkdir()
    save_file({'encoder.weight': torch.ones(2)}, other / 'model.safetensors')
    with pytest.raises(CheckpointError, match='no tensor maps'):
        load_llava3d_weights(model, other, allow_missing=True)
    with pytest.raises(CheckpointError, match='not found'):
        load_llava3d_weights(model, tmp_path / 'missing_dir')


def test_pretrained_parts_take_the_model_dtype(tmp_path):
    base = TrainingConfig.from_yaml(os.path.join(CONFIG_DIR, 'late_gemma.yaml'))
    gemma = build_transformer(base.expert)                          # a transformers GemmaModel
    assert isinstance(gemma, transformers.GemmaModel)
    gemma.to(torch.bfloat16).save_pretrained(tmp_path / 'gemma')   # as Gemma is released
    tower = build_vision_tower(base.vision)
    tower.to(torch.float16).save_pretrained(tmp_path / 'clip')      # as CLIP towers often are
    cfg = config('late_gemma', expert={'pretrained_path': str(tmp_path / 'gemma')},
                 vision={'pretrained_path': str(tmp_path / 'clip')})
    model = SpatialVLAModel(cfg).train()
    wrong = {n: p.dtype for n, p in model.named_parameters() if p.dtype != torch.float32}
    assert not wrong, wrong
    assert torch.equal(model.backbone.expert.norm.weight,
                       gemma.norm.weight.float())     # loaded, not random
    g = torch.Generator().manual_seed(0)
    b, h, a = 2, cfg.action.chunk_size, cfg.action.action_dim
    obs = ModelObservation(
        images=torch.rand(b, 1, 3, 64, 64, generator=g),
        points=torch.rand(b, 1, 64, 64, 3, generator=g) + 0.2,
        state=torch.randn(b, cfg.action.state_dim, generator=g),
        input_ids=torch.randint(3, 20, (b, cfg.language_model.max_text_tokens), generator=g),
        attention_mask=torch.ones(b, cfg.language_model.max_text_tokens, dtype=torch.bool))
    loss = model.compute_loss(ModelBatch(obs, torch.randn(b, h, a, generator=g),
                                         torch.ones(b, h, dtype=torch.bool)), generator=g)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.expert.layers[0].mlp.up_proj.weight.grad.dtype == torch.float32


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return {'bags': generate_demos(base), 'cache': str(base / 'episode_cache')}


def test_convert_command_writes_a_checkpoint_training_starts_from(released, demos, tmp_path,
                                                                  capsys):
    from spatialvla_ros.training.options import TrainOptions
    from spatialvla_ros.training.trainer import Trainer

    cfg, parts, tensors, directory = released
    config_path = os.path.join(CONFIG_DIR, 'deep_fusion.yaml')
    out = str(tmp_path / 'converted')
    rc = convert_llava3d.main(['--llava3d-dir', directory, '--config', config_path,
                               '--out', out])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert 'vision tower: 39/39 tensors, ' in printed.out and directory in printed.out
    assert 'transformers 4.37 names' in printed.out
    assert 'expert: ' in printed.out and 'random init' in printed.out
    assert 'tokenizer: ' in printed.out and 'not used from the checkpoint: 2 tensors' in \
        printed.out
    model, cfg2, stats, tokenizer = load_checkpoint(out)     # what the node loads
    assert cfg2.plan == 'deep_fusion' and stats.action_dim == cfg.action.action_dim
    assert_holds(model, parts)
    assert tokenizer('pick up the red cube')['input_ids']
    # training starts from it with the trainer's --init-checkpoint
    opts = TrainOptions(config=config_path, data=tuple(demos['bags']),
                        out_dir=str(tmp_path / 'run'), strategy='single', device='cpu', steps=1,
                        batch_size=2, checkpoint_every=1, log_every=1, val_every=100,
                        val_max_samples=2, cache_dir=demos['cache'], progress=False,
                        plot=False, init_checkpoint=out).validate()
    trainer = Trainer(opts)
    try:
        trainer.setup()
        assert_holds(trainer.model, parts)
        summary = trainer.run()
    finally:
        trainer.close()
    assert os.path.isdir(summary['checkpoint'])
    # a checkpoint without the tower fails, naming the tensors, unless --allow-missing
    without_tower = {k: v for k, v in tensors.items() if not k.startswith(TOWER_437)}
    bare = write_released(tmp_path / 'bare', without_tower)
    args = ['--llava3d-dir', bare, '--config', config_path, '--out', str(tmp_path / 'bad')]
    assert convert_llava3d.main(args) == 1
    err = capsys.readouterr().err
    assert 'encoder3d.vision_tower.' in err and '--allow-missing' in err
    assert not os.path.exists(tmp_path / 'bad')
    assert convert_llava3d.main(args + ['--allow-missing']) == 0
    assert 'left unset (random init): 39 tensors' in capsys.readouterr().out
