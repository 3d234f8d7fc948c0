"""Writes the marker pose model: a TorchScript with a YOLO-pose export's input and output
([B, 3, 640, 640] RGB in 0..1 -> [B, 56, 2]) that finds keypoints painted as coloured markers
by `ai-referee render`, so recorded phrases (keypoints, no video) can go through the whole
pipeline. Usage: python scripts/make-marker-model.py OUT.torchscript [--fail-on-white]

With --fail-on-white the model raises "CUDA out of memory" on any batch holding a frame that is
mostly white: the tests' stand-in for a GPU that runs out of memory mid-phrase (there is no GPU
here), so that a pose failure can be caused on a chosen frame of a real upload.

The code (mirrored in src/cli/render.rs): fencer f (0 = left, 1 = right), keypoint k (0..16),
c = k + 1: red = (c // 4) * 255 / 4, green = (c % 4) * 255 / 3, blue = 255 * f. The background is
black; letterbox grey (114) is rejected by the blue test. Markers are antialiased discs: the
model finds each one's core by its colour, then takes the coverage-weighted centroid of every lit
pixel nearest to that core, which recovers sub-pixel positions (about 0.04 px at 640).
"""
import sys

import torch
from torch import nn



class MarkerPose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fencers, keypoints = 2, 17
        labels = fencers * keypoints  # the label `labels` means "no marker"
        min_pixels = 3.0
        reach = 8.0  # pixels (model input) around a marker's core that can belong to it
        b, _, h, w = x.shape
        r, g, bl = x[:, 0] * 4.0, x[:, 1] * 3.0, x[:, 2]
        ri, gi, bi = torch.round(r), torch.round(g), torch.round(bl)
        code = ri * 4.0 + gi
        ok = ((r - ri).abs() < 0.35) & ((g - gi).abs() < 0.35) & ((bl - bi).abs() < 0.3)
        ok = ok & (code >= 1.0) & (code <= float(keypoints))
        label = torch.where(ok, bi * keypoints + code - 1.0, torch.full_like(code, float(labels))).long()
        # Keep pixels whose four neighbours carry the same label: drops the blended rims that
        # resizing leaves around each marker, which can pass for another code.
        padded = nn.functional.pad(label, (1, 1, 1, 1), value=float(labels))
        same = (padded[:, 1:-1, :-2] == label) & (padded[:, 1:-1, 2:] == label)
        same = same & (padded[:, :-2, 1:-1] == label) & (padded[:, 2:, 1:-1] == label)
        label = torch.where(same, label, torch.full_like(label, labels)).view(b, -1)

        ys = torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1).expand(h, w).reshape(1, -1).expand(b, -1)
        xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, w).expand(h, w).reshape(1, -1).expand(b, -1)
        zeros = torch.zeros(b, labels + 1, dtype=x.dtype, device=x.device)
        count = zeros.scatter_add(1, label, torch.ones_like(xs))[:, :labels]
        sx = zeros.scatter_add(1, label, xs)[:, :labels]
        sy = zeros.scatter_add(1, label, ys)[:, :labels]
        seen = count >= min_pixels
        cx = sx / count.clamp(min=1.0)
        cy = sy / count.clamp(min=1.0)

        # Refine: every lit pixel near a found marker belongs to the nearest one, weighted by its
        # coverage (brightness over the marker colour's), so the antialiased rims that carry the
        # sub-pixel position count too.
        code_r = torch.arange(labels, device=x.device) % keypoints + 1
        code_sum = (torch.div(code_r, 4, rounding_mode="floor").to(x.dtype) * 0.25
                    + (code_r % 4).to(x.dtype) / 3.0
                    + (torch.arange(labels, device=x.device) >= keypoints).to(x.dtype))
        brightness = x.sum(1).view(b, -1)
        lit = (brightness > 0.15).nonzero()
        bi, pi = lit[:, 0], lit[:, 1]
        px = (pi % w).to(x.dtype)
        py = torch.div(pi, w, rounding_mode="floor").to(x.dtype)
        dx = px.unsqueeze(1) - cx[bi]
        dy = py.unsqueeze(1) - cy[bi]
        d2 = torch.where(seen[bi], dx * dx + dy * dy, torch.full_like(dx, 1e12))
        nearest_d2, nearest = d2.min(1)
        near = nearest_d2 <= reach * reach
        alpha = (brightness[bi, pi] / code_sum[nearest]).clamp(0.0, 1.0) * near.to(x.dtype)
        slot = bi * labels + nearest
        flat = torch.zeros(b * labels, dtype=x.dtype, device=x.device)
        wsum = flat.scatter_add(0, slot, alpha).view(b, labels)
        wx = flat.scatter_add(0, slot, alpha * px).view(b, labels)
        wy = flat.scatter_add(0, slot, alpha * py).view(b, labels)
        refined = seen & (wsum > 0.0)
        kx = torch.where(refined, wx / wsum.clamp(min=1e-6) + 0.5, torch.zeros_like(wx)).view(b, fencers, keypoints)
        ky = torch.where(refined, wy / wsum.clamp(min=1e-6) + 0.5, torch.zeros_like(wy)).view(b, fencers, keypoints)
        vis = refined.to(x.dtype).view(b, fencers, keypoints)

        big = torch.full_like(kx, 1e9)
        x1 = torch.where(vis > 0, kx, big).amin(2)
        y1 = torch.where(vis > 0, ky, big).amin(2)
        x2 = torch.where(vis > 0, kx, -big).amax(2)
        y2 = torch.where(vis > 0, ky, -big).amax(2)
        found = vis.sum(2) >= 2.0
        x1, y1 = torch.where(found, x1, torch.zeros_like(x1)), torch.where(found, y1, torch.zeros_like(y1))
        x2, y2 = torch.where(found, x2, torch.zeros_like(x2)), torch.where(found, y2, torch.zeros_like(y2))
        box = torch.stack(((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1 + 4.0, y2 - y1 + 4.0), 2)
        score = torch.where(found, torch.full_like(x1, 0.9), torch.zeros_like(x1)).unsqueeze(2)
        points = torch.stack((kx, ky, vis), 3).view(b, fencers, keypoints * 3)
        return torch.cat((box, score, points), 2).transpose(1, 2).contiguous()


class FailOnWhite(nn.Module):
    """The marker model, except that a batch with a mostly white frame raises."""

    def __init__(self):
        super().__init__()
        self.markers = MarkerPose()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        white = (x.amin(1) > 0.99).to(x.dtype).mean((1, 2))
        if bool((white > 0.5).any()):
            raise RuntimeError("CUDA out of memory (the failing test model, on a white frame)")
        return self.markers(x)


if __name__ == "__main__":
    out = sys.argv[1]
    failing = "--fail-on-white" in sys.argv[2:]
    model = torch.jit.script((FailOnWhite() if failing else MarkerPose()).eval())
    y = model(torch.zeros(1, 3, 640, 640))
    assert list(y.shape) == [1, 56, 2], y.shape
    model.save(out)
    print(f"make-marker-model: wrote {out}", file=sys.stderr)
