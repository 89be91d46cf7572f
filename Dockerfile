# PromptDeck for a team: compose.yaml runs this image next to PostgreSQL. The team's prompts/,
# datasets/, team.yaml and .streamlit/secrets.toml are mounted into /app (compose.yaml), so
# saves from the editors land in the team's repository checkout.
FROM python:3.11-slim-bookworm
# llama-cpp-python compiles from source once (about 9 minutes on 2 cores)
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN scripts/setup requirements.txt
EXPOSE 8501
# scripts/start refuses an address other than loopback without [auth] in
# .streamlit/secrets.toml: on a network, sign-in is not optional.
ENTRYPOINT ["scripts/start", "--server.address", "0.0.0.0", "--server.port", "8501"]
