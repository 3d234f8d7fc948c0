//! Pose on a Triton Inference Server: the scheduler's batches go to a model that Triton serves
//! (the same TorchScript export), over the KServe v2 inference protocol: gRPC (`grpc://` URLs,
//! the tensors as raw bytes in `raw_input_contents`), or HTTP (`http://` URLs, Triton's binary
//! tensor extension: raw little-endian bytes after a JSON header). Decoding, NMS and the mapping
//! back to frame pixels are the local backend's own, so the two give the same detections for the
//! same frames.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::scheduler::PoseBackend;
use crate::{detect_in_batches, probe, InputShape, Letterbox, OutputLayout, PoseDetection, PoseError, Probed};

/// The input tensor's name by default (Ultralytics' ONNX naming; `scripts/triton/serve.py` uses
/// it). Triton's `pytorch_libtorch` backend calls it `INPUT__0`.
pub const INPUT_NAME: &str = "images";
/// The output tensor's name by default (`OUTPUT__0` under `pytorch_libtorch`).
pub const OUTPUT_NAME: &str = "output0";
/// The KServe v2 header that says how long the JSON part of a binary request or response is.
const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// Where the model is served and how patiently it is asked.
#[derive(Debug, Clone)]
pub struct TritonSettings {
    /// Where Triton is: `grpc://host:8001` (gRPC) or `http://host:8000` (HTTP).
    pub url: String,
    /// The model's name in Triton's repository.
    pub model: String,
    /// Its version; `None`: the one Triton's version policy picks.
    pub version: Option<String>,
    /// The input tensor's name in the model's config.
    pub input: String,
    /// The output tensor's name.
    pub output: String,
    /// How long one inference request may take.
    pub timeout: Duration,
    /// Retries after a failed request (connection refused, timeout, 5xx), with doubling backoff.
    pub retries: u32,
    /// The first backoff.
    pub backoff: Duration,
}

/// How requests reach Triton.
enum Transport {
    /// KServe v2 over HTTP, binary tensors.
    Http(reqwest::blocking::Client),
    /// KServe v2 over gRPC, on a runtime of its own (the scheduler's thread blocks on it).
    Grpc { runtime: tokio::runtime::Runtime, channel: tonic::transport::Channel },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Http(_) => "Http",
            Transport::Grpc { .. } => "Grpc",
        })
    }
}

/// A pose model served by Triton.
#[derive(Debug)]
pub struct TritonPose {
    settings: TritonSettings,
    transport: Transport,
    layout: OutputLayout,
    input: InputShape,
    describe: String,
}

impl TritonPose {
    /// Connects: checks that the model is ready and probes its output layout and input shapes
    /// with blank frames, as a local model is checked at load. Fails (`Unavailable`) when Triton
    /// cannot be reached; `NotPoseModel` when the model's output is not a pose model's.
    pub fn connect(settings: TritonSettings) -> Result<TritonPose, PoseError> {
        let unusable = |e: String| PoseError::Unavailable(format!("cannot reach Triton at {}: {e}", settings.url));
        let transport = if let Some(address) = settings.url.strip_prefix("grpc://") {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| unusable(e.to_string()))?;
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                .map_err(|e| unusable(e.to_string()))?
                .timeout(settings.timeout)
                .connect_timeout(settings.timeout.min(Duration::from_secs(5)));
            let channel = {
                let _entered = runtime.enter();
                endpoint.connect_lazy()
            };
            Transport::Grpc { runtime, channel }
        } else {
            let client = reqwest::blocking::Client::builder()
                .timeout(settings.timeout)
                .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
                .build()
                .map_err(|e| unusable(e.to_string()))?;
            Transport::Http(client)
        };
        let describe = format!("triton {} model {}{}", settings.url, settings.model, settings.version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default());
        let mut pose = TritonPose { settings, transport, layout: OutputLayout::Raw, input: InputShape::Square, describe };
        if !pose.reachable() {
            return Err(PoseError::Unavailable(format!("model {} is not ready on Triton at {}", pose.settings.model, pose.settings.url)));
        }
        let (layout, input) = probe(|batch| pose.infer(batch), Device::Cpu).map_err(|e| match e {
            Probed::Shape(shape) => PoseError::NotPoseModel { path: format!("{} on {}", pose.settings.model, pose.settings.url).into(), shape },
            Probed::Failed(e) => e,
        })?;
        pose.layout = layout;
        pose.input = input;
        Ok(pose)
    }

    /// Whether Triton answers that the model is ready.
    pub fn reachable(&self) -> bool {
        match &self.transport {
            Transport::Http(client) => client.get(format!("{}/ready", self.model_url())).timeout(Duration::from_secs(2)).send().is_ok_and(|r| r.status().is_success()),
            Transport::Grpc { runtime, channel } => {
                let request = grpc::ModelReadyRequest { name: self.settings.model.clone(), version: self.settings.version.clone().unwrap_or_default() };
                let asked = grpc::call::<_, grpc::ModelReadyResponse>(channel.clone(), grpc::MODEL_READY, request);
                runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), asked).await }).is_ok_and(|r| r.is_ok_and(|r| r.ready))
            }
        }
    }

    /// The output layout found at connection.
    pub fn layout(&self) -> OutputLayout {
        self.layout
    }

    fn model_url(&self) -> String {
        let base = self.settings.url.trim_end_matches('/');
        match &self.settings.version {
            Some(v) => format!("{base}/v2/models/{}/versions/{v}", self.settings.model),
            None => format!("{base}/v2/models/{}", self.settings.model),
        }
    }

    /// One forward pass through Triton, `[batch, 3, h, w]` float in, the model's output back;
    /// retried with backoff when Triton cannot be reached or fails.
    pub fn infer(&self, batch: &Tensor) -> Result<Tensor, PoseError> {
        let started = Instant::now();
        let mut backoff = self.settings.backoff;
        let mut attempt = 0;
        loop {
            match self.infer_once(batch) {
                Ok(out) => return Ok(out),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(e)) if attempt >= self.settings.retries => {
                    return Err(PoseError::Unavailable(format!("{e} (after {} attempts in {:.1} s)", attempt + 1, started.elapsed().as_secs_f64())))
                }
                Err(Attempt::Retry(_)) => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn infer_once(&self, batch: &Tensor) -> Result<Tensor, Attempt> {
        let batch = batch.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape = batch.size();
        let values = shape.iter().product::<i64>() as usize;
        let mut floats = vec![0f32; values];
        batch.copy_data(&mut floats, values);
        let data: Vec<u8> = floats.iter().flat_map(|v| v.to_le_bytes()).collect();
        match &self.transport {
            Transport::Http(client) => self.infer_http(client, shape, data),
            Transport::Grpc { runtime, channel } => self.infer_grpc(runtime, channel, shape, data),
        }
    }

    fn infer_grpc(&self, runtime: &tokio::runtime::Runtime, channel: &tonic::transport::Channel, shape: Vec<i64>, data: Vec<u8>) -> Result<Tensor, Attempt> {
        let request = grpc::ModelInferRequest {
            model_name: self.settings.model.clone(),
            model_version: self.settings.version.clone().unwrap_or_default(),
            inputs: vec![grpc::InferInputTensor { name: self.settings.input.clone(), datatype: "FP32".into(), shape }],
            outputs: vec![grpc::InferRequestedOutputTensor { name: self.settings.output.clone() }],
            raw_input_contents: vec![data],
        };
        let answer = runtime.block_on(grpc::call::<_, grpc::ModelInferResponse>(channel.clone(), grpc::MODEL_INFER, request));
        let response = answer.map_err(|status| {
            let failure = format!("Triton at {}: {} ({:?})", self.settings.url, status.message(), status.code());
            use tonic::Code;
            match status.code() {
                // NotFound: the model is not loaded (Triton starting, stopping, reloading it).
                Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown | Code::ResourceExhausted | Code::Aborted | Code::Cancelled | Code::NotFound => {
                    Attempt::Retry(failure)
                }
                _ => Attempt::Final(PoseError::Forward(failure)),
            }
        })?;
        let at = response.outputs.iter().position(|o| o.name == self.settings.output);
        let (output, raw) = at
            .and_then(|i| Some((&response.outputs[i], response.raw_output_contents.get(i)?)))
            .ok_or_else(|| Attempt::Final(PoseError::Forward(format!("Triton's answer has no raw output {}", self.settings.output))))?;
        tensor_from_raw(&output.datatype, &output.shape, raw).map_err(|e| Attempt::Final(PoseError::Forward(e)))
    }

    fn infer_http(&self, client: &reqwest::blocking::Client, shape: Vec<i64>, data: Vec<u8>) -> Result<Tensor, Attempt> {
        let header = json!({
            "inputs": [{ "name": self.settings.input, "shape": shape, "datatype": "FP32", "parameters": { "binary_data_size": data.len() } }],
            "outputs": [{ "name": self.settings.output, "parameters": { "binary_data": true } }],
        })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&data);
        let response = client
            .post(format!("{}/infer", self.model_url()))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(HEADER_LENGTH, header.len())
            .body(body)
            .send()
            .map_err(|e| Attempt::Retry(format!("Triton at {}: {e}", self.settings.url)))?;
        let status = response.status();
        let header_length = response.headers().get(HEADER_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        let bytes = response.bytes().map_err(|e| Attempt::Retry(format!("Triton's answer was cut: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>();
            let failure = format!("Triton answered {status}: {text}");
            // A model not loaded (Triton starting, stopping, reloading it) is worth waiting for.
            let not_loaded = status == reqwest::StatusCode::NOT_FOUND || text.contains("unknown model");
            return Err(if status.is_server_error() || not_loaded { Attempt::Retry(failure) } else { Attempt::Final(PoseError::Forward(failure)) });
        }
        decode_response(&bytes, header_length, &self.settings.output).map_err(|e| Attempt::Final(PoseError::Forward(e)))
    }
}

/// A tensor from an output's raw little-endian bytes; FP32 only (the pose model's output).
fn tensor_from_raw(datatype: &str, shape: &[i64], raw: &[u8]) -> Result<Tensor, String> {
    if datatype != "FP32" {
        return Err(format!("the output is {datatype}, not FP32"));
    }
    let count = shape.iter().product::<i64>().max(0) as usize;
    if raw.len() != count * 4 {
        return Err(format!("{} bytes for shape {shape:?}", raw.len()));
    }
    let values: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Tensor::from_slice(&values).reshape(shape))
}

/// The few KServe v2 gRPC messages used, by hand (field numbers as in the protocol's
/// `grpc_service.proto`; fields left out are skipped when decoding), and a unary call.
mod grpc {
    /// `inference.GRPCInferenceService/ModelInfer`.
    pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
    /// `inference.GRPCInferenceService/ModelReady`.
    pub const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyRequest {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelReadyResponse {
        #[prost(bool, tag = "1")]
        pub ready: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferRequest {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(message, repeated, tag = "5")]
        pub inputs: Vec<InferInputTensor>,
        #[prost(message, repeated, tag = "6")]
        pub outputs: Vec<InferRequestedOutputTensor>,
        #[prost(bytes = "vec", repeated, tag = "7")]
        pub raw_input_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferInputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferRequestedOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferResponse {
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<InferOutputTensor>,
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub raw_output_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    /// One unary call of `path` on the channel (no size limit on the answer: a batch's output
    /// is tens of MB).
    pub async fn call<Q, A>(channel: tonic::transport::Channel, path: &'static str, request: Q) -> Result<A, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        let mut client = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX);
        client.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic::codec::ProstCodec::<Q, A>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        Ok(client.unary(tonic::Request::new(request), path, codec).await?.into_inner())
    }
}

/// A failed request: worth another try, or not.
enum Attempt {
    Retry(String),
    Final(PoseError),
}

/// The output tensor of a KServe v2 response: a JSON header (`header_length` bytes, or all of it
/// when the output came as JSON) and the binary output after it.
fn decode_response(bytes: &[u8], header_length: Option<usize>, name: &str) -> Result<Tensor, String> {
    let json_end = header_length.unwrap_or(bytes.len()).min(bytes.len());
    let header: Value = serde_json::from_slice(&bytes[..json_end]).map_err(|e| format!("Triton's answer is not KServe v2 JSON: {e}"))?;
    let outputs = header["outputs"].as_array().ok_or("Triton's answer has no outputs")?;
    let mut offset = json_end;
    for output in outputs {
        let shape: Vec<i64> = output["shape"].as_array().ok_or("an output without a shape")?.iter().filter_map(Value::as_i64).collect();
        let count = shape.iter().product::<i64>().max(0) as usize;
        let size = output["parameters"]["binary_data_size"].as_u64().map(|s| s as usize);
        if output["name"] != name {
            offset += size.unwrap_or(0);
            continue;
        }
        if let Some(size) = size {
            let raw = bytes.get(offset..offset + size).ok_or("Triton's binary output is shorter than it says")?;
            return tensor_from_raw(output["datatype"].as_str().unwrap_or_default(), &shape, raw);
        }
        if output["datatype"] != "FP32" {
            return Err(format!("output {name} is {}, not FP32", output["datatype"]));
        }
        let values: Vec<f32> = output["data"].as_array().ok_or("an output with no data")?.iter().map(|v| v.as_f64().unwrap_or(f64::NAN) as f32).collect();
        if values.len() != count {
            return Err(format!("{} values for shape {shape:?}", values.len()));
        }
        return Ok(Tensor::from_slice(&values).reshape(shape.as_slice()));
    }
    Err(format!("Triton's answer has no output {name}"))
}

impl PoseBackend for TritonPose {
    fn input_shape(&self) -> InputShape {
        self.input
    }

    fn detect(&self, inputs: &[Tensor], frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
        detect_in_batches(inputs, frames, self.layout, |batch| self.infer(batch))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn pose_path(&self) -> crate::PosePath {
        crate::PosePath { runtime: "triton", precision: crate::Precision::F32, device: self.settings.url.clone(), threads: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_json_answers_decode_to_the_same_tensor() {
        let values = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.5];
        let header = json!({"outputs": [
            {"name": "other", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
            {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [1, 2, 3], "parameters": {"binary_data_size": 24}},
        ]})
        .to_string();
        let mut bytes = header.clone().into_bytes();
        bytes.extend_from_slice(&9f32.to_le_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let binary = decode_response(&bytes, Some(header.len()), OUTPUT_NAME).unwrap();
        assert_eq!(binary.size(), [1, 2, 3]);
        let as_json = json!({"outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [1, 2, 3], "data": values}]}).to_string();
        let from_json = decode_response(as_json.as_bytes(), None, OUTPUT_NAME).unwrap();
        assert!(binary.equal(&from_json));
        assert!(decode_response(&bytes[..bytes.len() - 1], Some(header.len()), OUTPUT_NAME).is_err(), "a short body is an error");
    }
}
