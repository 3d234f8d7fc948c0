"""Serves a YOLO-pose TorchScript through a real Triton Inference Server (PyPI's nvidia-pytriton
ships the `tritonserver` binary; the model runs here, on CPU or CUDA, behind Triton's Python
backend). KServe v2 over HTTP and gRPC; Triton's dynamic batcher on.

    python scripts/triton/serve.py --model models/yolo11n-pose.torchscript --http-port 8000

Prints `triton ready http=<port> grpc=<port> model=<name>` once the model is loaded, then serves
until SIGTERM or SIGINT.
"""

import argparse
import sys

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the TorchScript export")
    parser.add_argument("--name", default="yolo_pose", help="the model's name on Triton")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--queue-delay-us", type=int, default=2000, help="Triton's dynamic batcher's wait")
    parser.add_argument("--threads", type=int, default=0, help="torch's intra-op threads (0: its default)")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    module = torch.jit.load(args.model, map_location=device).eval()

    @batch
    def infer(images: np.ndarray):
        with torch.no_grad():
            out = module(torch.from_numpy(images).to(device))
        if isinstance(out, (list, tuple)):
            out = out[0]
        return {"output0": out.float().cpu().numpy()}

    config = TritonConfig(http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_verbose=0)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.name,
            infer_func=infer,
            inputs=[Tensor(name="images", dtype=np.float32, shape=(3, -1, -1))],
            outputs=[Tensor(name="output0", dtype=np.float32, shape=(-1, -1))],
            config=ModelConfig(max_batch_size=args.max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us)),
            strict=False,
        )
        print(f"triton ready http={args.http_port} grpc={args.grpc_port} model={args.name} device={device}", flush=True)
        triton.serve()


if __name__ == "__main__":
    sys.exit(main())
