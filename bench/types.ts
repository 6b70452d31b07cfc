/** One run's figure with the CPU use around it (% of one core). */
export interface Sample {
  value: number;
  serverCpu: number;
  genCpu: number;
  note?: string;
}
