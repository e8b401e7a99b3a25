// AudioWorklet: microphone samples at the context's rate -> 16-bit PCM at targetRate.
// A windowed-sinc low-pass (cut-off 0.45 x target rate) removes what would alias, then linear
// interpolation steps through the filtered signal; 100 ms blocks go to the page as ArrayBuffers.
class Pcm16Resampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const target = options.processorOptions.targetRate;
    this.step = sampleRate / target;
    const cutoff = 0.45 * target / sampleRate;          // cycles per input sample
    const n = this.step > 1 ? 2 * Math.ceil(8 * this.step) + 1 : 1;
    this.taps = new Float32Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const m = i - (n - 1) / 2;
      const sinc = m === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * m) / (Math.PI * m);
      const blackman = 0.42 - 0.5 * Math.cos(2 * Math.PI * i / (n - 1 || 1))
        + 0.08 * Math.cos(4 * Math.PI * i / (n - 1 || 1));
      this.taps[i] = n === 1 ? 1 : sinc * blackman;
      sum += this.taps[i];
    }
    for (let i = 0; i < n; i++) this.taps[i] /= sum;
    this.history = new Float32Array(n);
    this.head = 0;
    this.prev = 0;        // previous filtered sample
    this.pos = 0;         // next output position, in input samples after `prev`
    this.block = new Int16Array(Math.round(target / 10));
    this.fill = 0;
    this.energy = 0;
  }

  filter(x) {
    const n = this.taps.length;
    this.history[this.head] = x;
    let acc = 0;
    let j = this.head;
    for (let i = 0; i < n; i++) {
      acc += this.taps[i] * this.history[j];
      j = j === 0 ? n - 1 : j - 1;
    }
    this.head = (this.head + 1) % n;
    return acc;
  }

  emit(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.block[this.fill++] = v < 0 ? v * 32768 : v * 32767;
    this.energy += v * v;
    if (this.fill === this.block.length) {
      const rms = Math.sqrt(this.energy / this.fill);
      const copy = this.block.slice().buffer;
      this.port.postMessage({ pcm: copy, rms }, [copy]);
      this.fill = 0;
      this.energy = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const cur = this.filter(channel[i]);
      while (this.pos < 1) {
        this.emit(this.prev + (cur - this.prev) * this.pos);
        this.pos += this.step;
      }
      this.pos -= 1;
      this.prev = cur;
    }
    return true;
  }
}

registerProcessor("pcm16-resampler", Pcm16Resampler);
