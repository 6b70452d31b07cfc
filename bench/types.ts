/** One run's figure with the CPU use around it (% of one core). */
export interface Sample {
  value: number;
  serverCpu: number;
  genCpu: number;
  /** The server's main thread alone, % of one core (where measured). */
  mainCpu?: number;
  /** CPU used meanwhile by the rest of the machine (other processes), % of one core. */
  otherCpu?: number;
  note?: string;
}
