FROM base
COPY . /
