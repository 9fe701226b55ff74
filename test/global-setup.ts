import { ensureSynth } from '../local/synth';

// The end-to-end tests run the synthesized bundles: synthesize once, before any test file starts a system.
export default function globalSetup(): void {
  ensureSynth('Gatehouse');
}
