import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { createElement } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TokenPrompt } from "../components/TokenPrompt";
import { installFakeApi } from "../test/fakeApi";
import { getToken, signIn } from "./auth";
import { api } from "./client";

const REFUSED = { status: 401, body: { error: { type: "AuthenticationError", message: "needs its API token" } } };

beforeEach(() => localStorage.clear());
afterEach(() => vi.unstubAllGlobals());

describe("API token", () => {
  it("sends the stored token as a bearer header", async () => {
    const fake = installFakeApi();
    const seen: (string | null)[] = [];
    fake.on("POST /api/v1/auth/session", { body: { auth_required: true, authenticated: true } });
    fake.on("GET /api/v1/jobs/{id}", (_url, init) => {
      seen.push(new Headers(init.headers).get("Authorization"));
      return { body: { id: "j" } };
    });
    expect(await signIn("s3cret")).toBe(true);
    expect(getToken()).toBe("s3cret");
    await api.getJob("j");
    expect(seen).toEqual(["Bearer s3cret"]);
  });

  it("asks for the token on a 401, forgets a refused one, and closes once signed in", async () => {
    const fake = installFakeApi();
    localStorage.setItem("mistudio-api-token", "stale");
    fake.on("GET /api/v1/jobs/{id}", REFUSED);
    let accepted = false;
    fake.on("POST /api/v1/auth/session", (_url, init) => {
      accepted = new Headers(init.headers).get("Authorization") === "Bearer right";
      return accepted ? { body: { auth_required: true, authenticated: true } } : REFUSED;
    });
    const signedIn = vi.fn();
    render(createElement(TokenPrompt, { onSignedIn: signedIn }));
    expect(screen.queryByTestId("token-prompt")).toBeNull();
    await act(async () => {
      await expect(api.getJob("j")).rejects.toThrow("needs its API token");
    });
    expect(getToken()).toBeNull();
    const input = await screen.findByLabelText("API token");
    fireEvent.change(input, { target: { value: "wrong" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveProperty("textContent",
      expect.stringContaining("refused that token"));
    fireEvent.change(input, { target: { value: "right" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(signedIn).toHaveBeenCalled());
    expect(getToken()).toBe("right");
    expect(screen.queryByTestId("token-prompt")).toBeNull();
  });

  it("a hub 401 does not ask for the API token", async () => {
    const fake = installFakeApi();
    fake.on("GET /api/v1/hub/saes", { status: 401, body: { error: { type: "HubAuthError", message: "gated" } } });
    render(createElement(TokenPrompt));
    await act(async () => {
      await expect(api.browseHub("a/b")).rejects.toThrow("gated");
    });
    expect(screen.queryByTestId("token-prompt")).toBeNull();
  });
});
