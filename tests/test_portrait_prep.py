"""Reference-portrait preparation (emocast_core.face): mask recipe, SCRFD decoding, ArcFace alignment,
crop/paste geometry, input checks, real MediaPipe landmarks on a public-domain portrait.

Detection and identity run tiny ONNX nets in the official I/O layout (scripts/runner/face_models.py).
"""
import logging
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emocast_core.face import (ArcFaceEmbedder, CropGeometry, FaceModels, ScrfdDetector, antelope_paths, as_rgb,
                               crop_pixels, expand_region, feather_mask, hard_box, load_face_models, mask_box,
                               norm_crop, paste_back, portrait_masks, prepare_portrait, square_crop, umeyama,
                               warp_affine, whole_image)
from emocast_core.face import onnx_runtime
from emocast_core.face.arcface import preprocess
from emocast_core.face.masks import blurred_box, gaussian_blur
from emocast_core.face.scrfd import Face, anchor_centres, decode, letterbox
from scripts.runner.face_models import FACE_KPS, make_antelope


# ---------------------------------------------------------------- helpers / fixtures

@pytest.fixture(scope="module")
def antelope(tmp_path_factory):
    pytest.importorskip("onnxruntime")  # optional dependency; the pure parts are tested without it
    folder = tmp_path_factory.mktemp("insightface") / "models" / "antelopev2"
    arc = make_antelope(folder)
    yield folder, arc
    onnx_runtime.clear_cache()


@pytest.fixture(scope="module")
def models(antelope):
    return load_face_models(str(antelope[0]), use_mediapipe=False)


def scene(width=1280, height=960, red=(416, 304, 128), green=None):
    """Gray image with a red square (centre x, centre y, side) and optionally a green one."""
    img = torch.full((height, width, 3), 0.5)
    for square, colour in ((red, (1.0, 0.0, 0.0)), (green, (0.0, 1.0, 0.0))):
        if square:
            cx, cy, side = square
            img[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2] = torch.tensor(colour)
    return img


def smooth_image(height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 8, 8, generator=g)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0].permute(1, 2, 0) \
        .clamp(0, 1)


# ---------------------------------------------------------------- mask recipe (pure)

def test_expand_region_follows_upstream_arithmetic():
    # centre and half-side are floored: x mid (100+200)//2 = 150, half (100·1.2)//2 = 60
    assert expand_region((100, 200, 50, 150), 512, 512, 1.2) == (90, 40, 210, 160)
    assert expand_region((101, 200, 50, 150), 512, 512, 1.2) == (91, 40, 209, 160)  # mid 150, half 118.8//2 = 59
    # poking out on the left/top: shifted back inside, size kept
    assert expand_region((0, 100, 10, 110), 512, 512, 2.0) == (0, 0, 200, 200)
    # larger than the image: upstream would go negative; we clamp to the image
    assert expand_region((0, 500, 0, 500), 512, 512, 2.0) == (0, 0, 512, 512)


def _numpy_blur(m, sigma, radius):
    x = np.arange(-radius, radius + 1)
    k = np.exp(-x ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    p = np.pad(m, radius, mode="reflect")  # numpy "reflect" = OpenCV's default BORDER_REFLECT_101
    rows = np.stack([np.convolve(r, k, mode="valid") for r in p])
    return np.stack([np.convolve(c, k, mode="valid") for c in rows.T]).T


def test_blurred_box_matches_hand_computation():
    # A box on the 8-px grid of a 512² image samples to exactly 0/1 on the 64² grid (cv2 INTER_LINEAR
    # samples at 8·i + 3.5, between two pixels of the same block).
    hard = hard_box((128, 96, 320, 400), 512, 512)
    small = np.zeros((64, 64))
    small[12:50, 16:40] = 1
    expected = _numpy_blur(small, sigma=8.0, radius=25)  # OpenCV's sigma for ksize 51: 0.3·(25 − 1) + 0.8
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    got = blurred_box(hard, 64, 51)
    assert got.shape == (64, 64)
    assert np.allclose(got.numpy(), expected, atol=1e-5)
    lip = blurred_box(hard_box((200, 296, 264, 336), 512, 512), 64, 31)
    small = np.zeros((64, 64))
    small[37:42, 25:33] = 1
    exp_lip = _numpy_blur(small, sigma=5.0, radius=15)
    assert np.allclose(lip.numpy(), (exp_lip - exp_lip.min()) / (exp_lip.max() - exp_lip.min()), atol=1e-5)


def test_recipe_matches_opencv_and_pil_when_available():
    cv2 = pytest.importorskip("cv2")
    from PIL import Image
    hard = hard_box((137, 61, 389, 455), 700, 530)  # odd sizes: the resize interpolates
    ref = cv2.resize(hard.numpy(), (64, 64), interpolation=cv2.INTER_LINEAR)
    ref = cv2.normalize(cv2.GaussianBlur(ref, (51, 51), 0), None, 0, 1, cv2.NORM_MINMAX)
    assert np.allclose(blurred_box(hard, 64, 51).numpy(), ref, atol=1e-5)
    masks = portrait_masks((137, 61, 389, 455), None, 700, 530)
    for level, side in enumerate((64, 32, 16, 8)):
        pil = np.asarray(Image.fromarray(ref.astype(np.float32), mode="F").resize((side, side), Image.BILINEAR))
        assert np.allclose(masks.levels[level][1].reshape(side, side).numpy(), pil, atol=1e-5)
    region = np.asarray(Image.fromarray(hard.numpy(), mode="F").resize((512, 512), Image.BILINEAR))
    assert np.allclose(masks.face_region[0, 0].numpy(), region, atol=1e-5)


def test_partition_levels_and_face_region():
    masks = portrait_masks((128, 96, 384, 448), (192, 320, 320, 384), 512, 512)
    assert [tuple(t.shape) for t in masks.face_region.shape and [masks.face_region]] == [(1, 3, 512, 512)]
    assert torch.equal(masks.face_region[0, 0], masks.face_region[0, 2])
    assert torch.equal(masks.face_region[0, 0], hard_box((128, 96, 384, 448), 512, 512))  # 512² box: stays hard
    assert len(masks.levels) == 4
    for level, side in enumerate((64, 32, 16, 8)):
        full, face, lip = masks.levels[level]
        assert full.shape == face.shape == lip.shape == (1, side * side)
        for m in (full, face, lip):
            assert m.min() >= -1e-6 and m.max() <= 1 + 1e-6
    full, face, lip = masks.levels[0]
    face_b, lip_b = masks.face_blur.reshape(1, -1), masks.lip_blur.reshape(1, -1)
    assert torch.allclose(full, 1 - face_b) and torch.allclose(lip, lip_b)
    where = face_b >= lip_b
    assert where.float().mean() > 0.5
    assert torch.allclose((full + face + lip)[where], torch.ones(int(where.sum())), atol=1e-6)
    assert torch.allclose(face[~where], torch.zeros(int((~where).sum())))  # face = max(face_b − lip_b, 0)
    # the maps peak where they should: lip inside the mouth box, background far from the face
    assert masks.lip_blur[44, 32] == 1.0 and masks.face_blur[34, 32] > 0.99 and full[0, 0] > 0.99


def test_masks_without_lip_whole_image_and_small_sizes():
    no_lip = portrait_masks((10, 10, 40, 40), None, 64, 64, size=64)  # parity size: 8² latent
    assert [lvl[0].shape[1] for lvl in no_lip.levels] == [64, 16, 4, 1]
    assert all(float(lvl[2].abs().max()) == 0 for lvl in no_lip.levels)
    whole = portrait_masks((0, 0, 300, 200), None, 200, 300)
    assert torch.all(whole.face_region == 1)
    assert torch.all(whole.levels[0][0] == 0) and torch.all(whole.levels[0][1] == 1)  # all "face", no background
    with pytest.raises(ValueError, match="multiple of 64"):
        portrait_masks((0, 0, 10, 10), None, 100, 100, size=500)


def test_masks_for_a_factor_4_latent_grid(models):
    """A model on a factor-4 autoencoder (the demo's) gets the same regions on a twice finer grid."""
    fine = portrait_masks((10, 10, 50, 56), (20, 36, 44, 48), 64, 64, size=64, latent_factor=4)
    coarse = portrait_masks((10, 10, 50, 56), (20, 36, 44, 48), 64, 64, size=64)
    assert [lvl[0].shape[1] for lvl in fine.levels] == [256, 64, 16, 4]
    for f, c in zip(fine.levels[1], coarse.levels[0]):  # level 1 of the fine grid is the 8x8 grid
        assert torch.corrcoef(torch.cat([f, c]))[0, 1] > 0.8  # measured 0.88 to 0.99
    lip = fine.levels[0][2].reshape(16, 16)
    y, x = divmod(int(lip.argmax()), 16)
    assert 36 <= 4 * y + 2 <= 48 and 20 <= 4 * x + 2 <= 44  # the peak is inside the lip box (64² pixels)
    with pytest.raises(ValueError, match="multiple of 32"):
        portrait_masks((0, 0, 10, 10), None, 100, 100, size=48, latent_factor=4)
    p = prepare_portrait(torch.full((64, 64, 3), 0.5), models, crop_scale=0, allow_no_face=True, size=64,
                         face_mask=torch.ones(1, 64, 64))
    assert p.mask_levels_for(8) is p.mask_levels
    assert [lvl[0].shape[1] for lvl in p.mask_levels_for(4)] == [256, 64, 16, 4]


def test_gaussian_blur_keeps_mass_and_is_symmetric():
    m = torch.zeros(64, 64)
    m[32, 32] = 1
    b = gaussian_blur(m, 51)
    assert abs(float(b.sum()) - 1) < 1e-5 and torch.allclose(b, b.T) and torch.allclose(b, b.flip(0).roll(1, 0))


# ---------------------------------------------------------------- SCRFD

def test_letterbox_top_left_black_and_normalised():
    blob, scale = letterbox(torch.full((960, 1280, 3), 0.5))
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32 and scale == 0.5
    assert np.allclose(blob[0, :, :480], (127.5 - 127.5) / 128)
    assert np.allclose(blob[0, :, 480:], -127.5 / 128)
    tall, scale = letterbox(torch.zeros(1000, 300, 3))
    assert scale == 0.64 and np.allclose(tall[0, :, :, 192:], -127.5 / 128)  # int(640 / (1000/300)) = 192 wide


def _raw_outputs(plants):
    """Zero SCRFD outputs with planted (stride, row, col, anchor, score, dist[4], kps[10]) entries."""
    outs = {}
    for stride in (8, 16, 32):
        n = (640 // stride) ** 2 * 2
        outs[stride] = [np.zeros((n, 1), np.float32), np.zeros((n, 4), np.float32), np.zeros((n, 10), np.float32)]
    for stride, row, col, anchor, score, dist, kps in plants:
        i = (row * (640 // stride) + col) * 2 + anchor
        outs[stride][0][i] = score
        outs[stride][1][i] = dist
        outs[stride][2][i] = kps
    return [outs[s][k] for k in range(3) for s in (8, 16, 32)]


def test_decode_planted_anchors():
    kps = np.arange(10, dtype=np.float32) / 10
    raw = _raw_outputs([
        (16, 10, 20, 1, 0.9, (1, 2, 3, 4), kps),        # centre (320, 160)
        (16, 10, 21, 0, 0.8, (1, 2, 3, 4), kps),        # 16 px to the right: IoU > 0.4, suppressed
        (32, 2, 3, 0, 0.7, (1, 1, 1, 1), kps),          # centre (96, 64), separate face
        (8, 70, 70, 0, 0.49, (1, 1, 1, 1), kps),        # below the 0.5 threshold
    ])
    faces = decode(raw, det_scale=0.5)
    assert [round(f.score, 2) for f in faces] == [0.9, 0.7]
    assert np.allclose(faces[0].box, np.array([320 - 16, 160 - 32, 320 + 48, 160 + 64]) / 0.5)
    assert np.allclose(faces[0].keypoints, (np.array([320, 160]) + kps.reshape(5, 2) * 16) / 0.5)
    assert np.allclose(faces[1].box, np.array([64, 32, 128, 96]) / 0.5)
    # output order and a leading batch dim do not matter: outputs are grouped by shape
    shuffled = [raw[i][None] for i in (8, 0, 4, 1, 7, 2, 3, 6, 5)]
    assert [f.score for f in decode(shuffled, 0.5)] == [f.score for f in faces]
    assert np.allclose(anchor_centres(16, 2)[2 * (10 * 40 + 20) + 1], (320, 160))


def test_decode_rejects_other_models():
    with pytest.raises(ValueError, match="scrfd_10g_bnkps"):
        decode(_raw_outputs([])[:6], 1.0)  # a detector without keypoints (6 outputs)
    bad = _raw_outputs([])
    bad[0] = np.zeros((100, 1), np.float32)
    bad[3], bad[6] = np.zeros((100, 4), np.float32), np.zeros((100, 10), np.float32)
    with pytest.raises(ValueError, match="640"):
        decode(bad, 1.0)


def test_detector_finds_planted_faces_largest_first(antelope):
    folder, _ = antelope
    det = ScrfdDetector(str(folder / "scrfd_10g_bnkps.onnx"))
    faces = det.detect(scene(green=(960, 640, 64)))
    assert len(faces) == 2
    big, small = faces
    assert np.allclose(big.box, [352, 240, 480, 368], atol=1.0)  # the 128-px red square (det scale 0.5)
    assert np.allclose(small.box, [928, 608, 992, 672], atol=1.0)  # the 64-px green one, stride 16
    assert np.allclose(big.keypoints, np.array([416, 304]) + 2 * np.array(FACE_KPS), atol=1.0)
    assert det.detect(torch.full((300, 300, 3), 0.5)) == []


# ---------------------------------------------------------------- ArcFace alignment and embedding

def _similarity(scale, degrees, tx, ty):
    a = np.deg2rad(degrees)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty],
                     [0, 0, 1]])


def test_umeyama_recovers_a_similarity():
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    t = _similarity(1.7, 23, 12.5, -40)
    dst = src @ t[:2, :2].T + t[:2, 2]
    assert np.allclose(umeyama(src, dst), t, atol=1e-9)
    mirrored = src * [-1, 1]
    est = umeyama(src, mirrored)
    assert np.linalg.det(est[:2, :2]) > 0  # never a reflection
    with pytest.raises(ValueError, match="degenerate"):
        umeyama(np.ones((5, 2)), src)
    transform = pytest.importorskip("skimage.transform")
    noisy = dst + np.random.default_rng(1).normal(0, 2, dst.shape)
    assert np.allclose(umeyama(src, noisy), transform.SimilarityTransform.from_estimate(src, noisy).params)


def test_norm_crop_undoes_a_known_warp(antelope):
    from emocast_core.face import ARCFACE_TEMPLATE
    pattern = smooth_image(112, 112) * 255
    crop_to_image = _similarity(2.5, 12, 300, 150)  # pattern pixel -> image pixel
    image = warp_affine(pattern, crop_to_image, (500, 640))  # image(p) = pattern(T⁻¹·p)
    kps = ARCFACE_TEMPLATE @ crop_to_image[:2, :2].T + crop_to_image[:2, 2]
    aligned = norm_crop(image, kps)
    assert aligned.shape == (112, 112, 3)
    err = (aligned - pattern)[2:-2, 2:-2].abs()
    assert float(err.max()) < 3.0  # 0..255 scale; bilinear twice on a smooth pattern
    assert float(norm_crop(torch.zeros(500, 640, 3), kps).abs().max()) == 0


def test_arcface_embedding_is_raw_rgb_and_preprocessed(antelope):
    folder, arc = antelope
    from emocast_core.face import ARCFACE_TEMPLATE
    embedder = ArcFaceEmbedder(str(folder / "glintr100.onnx"))
    rgb = smooth_image(240, 200, seed=3)
    kps = ARCFACE_TEMPLATE * 1.5 + [20, 30]
    got = embedder.embed(rgb, kps)
    aligned = norm_crop(rgb * 255, kps)
    blob = preprocess(aligned)
    assert np.allclose(blob[0, :, 5, 7], ((aligned[5, 7] - 127.5) / 127.5).numpy())  # RGB order, NCHW
    with torch.no_grad():
        want = arc(torch.from_numpy(blob))
        bgr = arc(torch.from_numpy(blob[:, ::-1].copy()))
    assert got.shape == (1, 512) and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, bgr, atol=1e-2)
    assert abs(float(got.norm()) - 1.0) > 0.1  # raw, not L2-normalised


# ---------------------------------------------------------------- input checks and model files

def test_as_rgb_policies_and_errors():
    gray = torch.rand(2, 80, 90, 1)
    rgb = as_rgb(gray)
    assert rgb.shape == (80, 90, 3) and torch.equal(rgb[..., 0], gray[0, ..., 0]) and torch.equal(rgb[..., 2],
                                                                                                   gray[0, ..., 0])
    rgba = torch.zeros(64, 64, 4)
    rgba[..., 0] = 1
    rgba[:32, :, 3] = 1
    out = as_rgb(rgba)
    assert torch.equal(out[0, 0], torch.tensor([1.0, 0, 0])) and torch.equal(out[40, 0], torch.ones(3))  # over white
    assert as_rgb(torch.full((64, 64, 3), 1.5)).max() == 1
    with pytest.raises(ValueError, match=r"image: expected 1 \(gray\), 3 \(RGB\) or 4"):
        as_rgb(torch.rand(1, 64, 64, 2))
    with pytest.raises(ValueError, match="permuted"):
        as_rgb(torch.rand(3, 128, 128))
    with pytest.raises(ValueError, match="too small.*at least 64 px"):
        as_rgb(torch.rand(1, 50, 300, 3))
    with pytest.raises(ValueError, match="NaN"):
        as_rgb(torch.full((64, 64, 3), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        as_rgb(torch.rand(0, 64, 64, 3))


def test_missing_model_files_are_named(tmp_path, antelope):
    with pytest.raises(FileNotFoundError, match="scrfd_10g_bnkps.onnx, glintr100.onnx.*models/insightface/models"):
        antelope_paths(str(tmp_path))
    (tmp_path / "scrfd_10g_bnkps.onnx").write_bytes((antelope[0] / "scrfd_10g_bnkps.onnx").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"Missing glintr100\.onnx in"):
        load_face_models(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not found"):
        antelope_paths(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="face_landmarker_v2_with_blendshapes.task"):
        load_face_models(str(antelope[0]), landmarker_task=str(tmp_path / "x.task"))


def test_missing_onnxruntime_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModuleNotFoundError, match="pip install onnxruntime.*onnxruntime-gpu"):
        onnx_runtime.require_onnxruntime()


def test_no_face_error_and_official_fallback(models, caplog):
    gray = torch.full((1, 200, 300, 3), 0.5)
    with pytest.raises(ValueError, match=r"No face found in image \(300x200\).*allow_no_face"):
        prepare_portrait(gray, models)
    with caplog.at_level(logging.WARNING):
        p = prepare_portrait(gray, models, allow_no_face=True)
    assert "no face" in caplog.text
    assert torch.equal(p.face_embedding, torch.zeros(1, 512)) and p.face is None and not p.face_detected
    assert p.crop.is_whole_image and p.landmark_source == "whole-image" and p.lip_box is None
    assert torch.all(p.face_region == 1) and torch.all(p.mask_levels[0][2] == 0)
    assert p.image.shape == (1, 3, 512, 512)


def test_option_and_user_mask_errors(models):
    img = scene(640, 480, red=(208, 152, 64))
    with pytest.raises(ValueError, match="crop_scale"):
        prepare_portrait(img, models, crop_scale=0.5)
    with pytest.raises(ValueError, match="face_expand_ratio"):
        prepare_portrait(img, models, face_expand_ratio=0)
    with pytest.raises(ValueError, match="face_mask is empty"):
        prepare_portrait(img, models, face_mask=torch.zeros(1, 480, 640))
    with pytest.raises(ValueError, match=r"lip_mask: expected a MASK"):
        prepare_portrait(img, models, lip_mask=torch.zeros(1, 1, 480, 640))
    far = torch.zeros(480, 640)
    far[400:450, 500:600] = 1
    with pytest.raises(ValueError, match=r"lip_mask lies outside the portrait crop .*crop_scale"):
        prepare_portrait(img, models, crop_scale=2.0, lip_mask=far)


# ---------------------------------------------------------------- crop and paste-back

def test_square_crop_policy():
    g = square_crop((100, 100, 200, 220), 1000, 800, 2.0, 512)  # side 240, centred at (150, 160)
    assert g.box == (30, 40, 270, 280) and g.width == g.height == 240
    g = square_crop((0, 0, 100, 100), 1000, 800, 3.0, 512)  # would start at -100: shifted inside
    assert g.box == (0, 0, 300, 300)
    g = square_crop((50, 100, 250, 300), 300, 400, 3.0, 512)  # 600 > long side 400: capped, padded on x
    assert g.width == 400 and g.x0 == -50 and g.y0 == 0
    img = smooth_image(400, 300)
    crop = crop_pixels(img, g)
    assert crop.shape == (400, 400, 3)
    assert torch.equal(crop[:, 50:350], img) and torch.equal(crop[:, 0], img[:, 0]) and torch.equal(crop[:, -1],
                                                                                                    img[:, -1])


def test_paste_back_round_trip():
    original = smooth_image(360, 480, seed=5)
    geom = CropGeometry(100, 40, 256, 256, 480, 360, 512)
    from emocast_core.face.resample import resize_hwc
    frames = resize_hwc(crop_pixels(original, geom), (512, 512)).expand(3, 512, 512, 3)
    out = paste_back(original, frames, geom, feather_px=16)
    assert out.shape == (3, 360, 480, 3)
    inside = out[:, 40:296, 100:356]
    assert float((inside - original[40:296, 100:356]).abs().max()) < 0.01  # resampling error only
    outside = torch.ones(360, 480, dtype=torch.bool)
    outside[40:296, 100:356] = False
    assert torch.equal(out[:, outside], original[outside].expand(3, -1, 3))  # exactly the original
    # a changed frame shows fully inside the feather band, blends within it
    red = torch.zeros(1, 512, 512, 3)
    red[..., 0] = 1
    pasted = paste_back(original, red, geom, feather_px=16)[0]
    assert torch.allclose(pasted[168, 228], torch.tensor([1.0, 0, 0]))
    edge = pasted[168, 101]
    assert 0 < float(edge[0] - original[168, 101, 0]) < 1 - float(original[168, 101, 0])
    w = feather_mask(CropGeometry(0, 0, 480, 360, 480, 360, 512), 16)
    assert torch.all(w == 1)  # a crop filling the image has no seam to hide


def test_whole_image_geometry_pastes_back_distorted_frames():
    original = smooth_image(200, 320)
    geom = whole_image(320, 200, 512)
    from emocast_core.face.resample import resize_hwc
    frames = resize_hwc(original, (512, 512))[None]
    assert float((paste_back(original, frames, geom, 8)[0] - original).abs().max()) < 0.02


# ---------------------------------------------------------------- end to end with the tiny models

def test_prepare_portrait_end_to_end(models, caplog):
    img = scene(green=(960, 640, 64))[None]
    with caplog.at_level(logging.INFO):
        p = prepare_portrait(img, models, crop_scale=2.0)
    assert "2 faces" in caplog.text
    assert p.crop.box == (288, 176, 544, 432)  # 2.0 × 128 around the red square
    assert p.landmark_source == "scrfd-keypoints"
    assert p.image.shape == (1, 3, 512, 512) and p.image.min() >= -1 and p.image.max() <= 1
    assert p.image_01.shape == (512, 512, 3) and torch.allclose(p.image, p.image_01.permute(2, 0, 1)[None] * 2 - 1)
    assert torch.allclose(p.image_01[256, 256], torch.tensor([1.0, 0, 0]))  # the face is in the middle
    want = models.embedder.embed(as_rgb(img), p.face.keypoints)
    assert torch.equal(p.face_embedding, want) and float(want.abs().sum()) > 0
    # face box: SCRFD box 64..192 in crop px; mid 128, half (128·1.2)//2 = 76
    assert p.face_box == (52, 52, 204, 204)
    x0, y0, x1, y1 = p.lip_box  # mouth corners at 108/148 → width 40, ×2.0
    assert (x0, x1) == (88, 168) and y0 < 156 < y1
    assert p.face_region.shape == (1, 3, 512, 512) and [m[0].shape[1] for m in p.mask_levels] == [4096, 1024, 256, 64]
    mask = p.face_mask_in_source()
    assert mask.shape == (960, 1280) and mask[304, 416] == 1 and mask[100, 100] == 0
    assert int(mask.sum()) == 152 * 152
    pasted = p.paste_back(p.image_01[None], feather_px=8)
    assert pasted.shape == (1, 960, 1280, 3) and float((pasted[0] - p.source_image).abs().mean()) < 1e-3


def test_user_masks_override_boxes(models):
    img = scene(640, 480, red=(208, 152, 64))
    face = torch.zeros(1, 480, 640)
    face[0, 100:200, 150:260] = 1  # inside the crop (144, 88, 272, 216)
    lip = torch.zeros(240, 320)  # another size: resized to the image
    lip[85:95, 95:115] = 1
    p = prepare_portrait(img, models, crop_scale=2.0, face_mask=face, lip_mask=lip)
    assert p.landmark_source == "scrfd-keypoints+user-face+user-lip"
    ox, oy = p.crop.x0, p.crop.y0
    assert p.face_box == (150 - ox, 100 - oy, 260 - ox, 200 - oy)
    assert mask_box(lip, 480, 640, "lip_mask") == (190, 170, 230, 190)
    # no face at all, but a painted face: the crop goes around the painting
    gray = torch.full((480, 640, 3), 0.5)
    p = prepare_portrait(gray, models, crop_scale=2.0, allow_no_face=True, face_mask=face)
    assert p.crop.box == (95, 40, 315, 260) and p.landmark_source == "whole-image+user-face"


def test_crop_scale_zero_is_the_official_whole_image_resize(models):
    img = scene(640, 480, red=(208, 152, 64))
    p = prepare_portrait(img, models, crop_scale=0)
    assert p.crop.is_whole_image and p.crop.box == (0, 0, 640, 480)
    assert p.face_box == expand_region((176.0, 240.0, 120.0, 184.0), 640, 480, 1.2)


# ---------------------------------------------------------------- real landmarks (MediaPipe, public-domain portrait)

class _FixedDetector:
    """Stands in for SCRFD on a real photo: the face where MediaPipe's own detector puts it."""

    def __init__(self, faces):
        self.faces = faces

    def detect(self, rgb):
        return self.faces


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.astronaut().copy()).float() / 255  # 512×512, public domain (NASA)


def test_mediapipe_landmarks_on_a_real_portrait(astronaut, models, tmp_path, caplog):
    pytest.importorskip("mediapipe")
    from emocast_core.face.mediapipe_mesh import face_meshes
    meshes, source = face_meshes(astronaut)
    if source.startswith("unavailable"):
        pytest.skip(source)
    assert source == "mediapipe-face-mesh" and len(meshes) == 1 and meshes[0].shape[0] >= 468
    face = Face(np.array([180.0, 80, 272, 178]), 0.9,
                np.array([[205.0, 103], [247, 104], [224, 131], [203, 140], [245, 142]]))
    real = FaceModels(_FixedDetector([face]), models.embedder, None, use_mediapipe=True)
    p = prepare_portrait(astronaut, real, crop_scale=0)
    assert p.landmark_source == "mediapipe-face-mesh"
    # the silhouette spans about x 179..272, y 72..175 and the lips x 202..246, y 139..155 (measured)
    fx0, fy0, fx1, fy1 = p.face_box
    assert abs((fx0 + fx1) / 2 - 225) < 6 and abs((fy0 + fy1) / 2 - 124) < 8 and 100 < fx1 - fx0 < 125
    lx0, ly0, lx1, ly1 = p.lip_box
    assert abs((lx0 + lx1) / 2 - 224) < 6 and abs((ly0 + ly1) / 2 - 147) < 6 and 75 < lx1 - lx0 < 100
    assert fx0 < lx0 < lx1 < fx1 and fy0 < ly0 < ly1 <= fy1
    # a landmarker task that cannot run (a wrong file here) falls back to the built-in mesh, with a warning
    junk = tmp_path / "face_landmarker_v2_with_blendshapes.task"
    junk.write_bytes(b"not a task bundle")
    with caplog.at_level(logging.WARNING):
        again = prepare_portrait(astronaut, FaceModels(real.detector, models.embedder, str(junk)), crop_scale=0)
    assert "could not run" in caplog.text and again.landmark_source == "mediapipe-face-mesh"
    assert again.face_box == p.face_box
    # the keypoint fallback lands close to the mesh's lips
    fallback = prepare_portrait(astronaut, FaceModels(_FixedDetector([face]), models.embedder, None, False),
                                crop_scale=0)
    assert np.allclose(fallback.lip_box, p.lip_box, atol=12)
