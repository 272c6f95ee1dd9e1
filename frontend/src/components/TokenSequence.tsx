/** One activation example: tokens highlighted by activation, hover shows the value, the max token is marked. */
import { useState } from "react";
import type { ActivationExample } from "../api/types";
import { displayToken, formatNumber } from "../lib/format";

/** What a token sequence shows: tokens, one value per token, and the max (a stored example or a live run). */
export type TokenValues = Pick<ActivationExample, "tokens" | "values" | "max_value" | "max_token_index">;

interface Props {
  example: TokenValues;
  /** The value that maps to full highlight (the feature's max activation). */
  scale: number;
  /** Makes tokens clickable: called with the clicked token's position. */
  onSelect?: (index: number) => void;
  /** The position shown as selected. */
  selected?: number | null;
}

export function TokenSequence({ example, scale, onSelect, selected }: Props) {
  const [hover, setHover] = useState<number | null>(null);
  const denom = scale > 0 ? scale : 1;
  return (
    <div className="example" data-testid="activation-example">
      <p className={`tokens${onSelect ? " selectable" : ""}`}>
        {example.tokens.map((token, i) => {
          const value = example.values[i] ?? 0;
          const strength = Math.max(0, Math.min(1, value / denom));
          const isMax = i === example.max_token_index;
          return (
            <span
              key={i}
              className={`tok${value > 0 ? " active" : ""}${strength >= 0.5 ? " strong" : ""}${isMax ? " max" : ""}${
                selected === i ? " selected" : ""}`}
              style={value > 0 ? { backgroundColor: `rgba(var(--highlight-rgb), ${0.15 + 0.85 * strength})` } : undefined}
              title={`${JSON.stringify(token)}: ${formatNumber(value, 4)}`}
              data-value={value}
              data-testid={value > 0 ? "highlighted-token" : undefined}
              tabIndex={isMax ? 0 : -1}
              onMouseEnter={() => setHover(i)}
              onMouseLeave={() => setHover(null)}
              onFocus={() => setHover(i)}
              onBlur={() => setHover(null)}
              onClick={onSelect ? () => onSelect(i) : undefined}
            >
              {displayToken(token)}
            </span>
          );
        })}
      </p>
      <p className="example-meta muted">
        <span className="hover-readout" aria-live="polite">
          {hover !== null
            ? `${JSON.stringify(example.tokens[hover])} = ${formatNumber(example.values[hover] ?? 0, 4)}`
            : `max ${formatNumber(example.max_value, 4)} at ${JSON.stringify(example.tokens[example.max_token_index] ?? "")}`}
        </span>
      </p>
    </div>
  );
}
