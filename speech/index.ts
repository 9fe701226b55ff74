/** The speech service process: what the container runs (see main.ts). */
import { startSpeechProcess } from './main';

startSpeechProcess();
