/** An error shown next to what the user did (announced to screen readers). */
export function ErrorMessage({ message, testId }: { message: string | null | undefined; testId?: string }) {
  if (!message) return null;
  return (
    <p className="error" role="alert" data-testid={testId}>
      {message}
    </p>
  );
}
