// Imported first by the worker: on Node ≥ 24 a global Float16Array makes onnxruntime-node 1.29 read fp16 tensors
// as 0 bytes (cuda-execution-provider.md §6). The engine process has its own globals, so removing it here
// affects nobody else. KV data is passed as Uint16Array fp16 bits instead.
delete (globalThis as { Float16Array?: unknown }).Float16Array;
export {};
