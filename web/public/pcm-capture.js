// AudioWorklet processor: hands the microphone's samples (mono, the context's sample rate) to the page in small
// batches. Resampling to 16 kHz happens on the page: forcing an AudioContext's rate fails in some browsers.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buffer = new Float32Array(2048);
    this.length = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      if (this.length + channel.length > this.buffer.length) {
        this.port.postMessage(this.buffer.slice(0, this.length));
        this.length = 0;
      }
      this.buffer.set(channel, this.length);
      this.length += channel.length;
    }
    return true;
  }
}
registerProcessor('pcm-capture', PcmCapture);
