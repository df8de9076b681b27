#!/usr/bin/env bash
# S3 compatibility smoke test with the AWS CLI against a gateway at $S3_ENDPOINT.
# Run by the ignored unit test `server_tests::awscli_smoke`, or by hand against a cluster.
set -euo pipefail
ep=(--endpoint-url "$S3_ENDPOINT")
b=cli-smoke
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
aws "${ep[@]}" s3 mb "s3://$b"
head -c 9000000 /dev/urandom >"$dir/big.bin"
echo small >"$dir/small.txt"
mkdir -p "$dir/tree/sub"
for i in 1 2 3; do echo "$i" >"$dir/tree/f$i"; echo "s$i" >"$dir/tree/sub/g$i"; done
aws "${ep[@]}" s3 cp "$dir/big.bin" "s3://$b/big.bin"
aws "${ep[@]}" s3 cp "$dir/small.txt" "s3://$b/with space/small.txt"
aws "${ep[@]}" s3 sync "$dir/tree" "s3://$b/tree"
aws "${ep[@]}" s3 cp "s3://$b/big.bin" "$dir/big.out"
cmp "$dir/big.bin" "$dir/big.out"
aws "${ep[@]}" s3 cp "s3://$b/with space/small.txt" "$dir/small.out"
cmp "$dir/small.txt" "$dir/small.out"
aws --endpoint-url "$S3_ENDPOINT" s3 ls "s3://$b/" >"$dir/ls.txt"
grep "PRE tree/" "$dir/ls.txt" >/dev/null
test "$(aws --endpoint-url "$S3_ENDPOINT" s3 ls --recursive "s3://$b/tree/" | wc -l)" = 6
aws "${ep[@]}" s3 sync "s3://$b/tree" "$dir/back"
diff -r "$dir/tree" "$dir/back"
aws --endpoint-url "$S3_ENDPOINT" s3api head-object --bucket "$b" --key big.bin >"$dir/head.json"
grep '"ContentLength": 9000000' "$dir/head.json" >/dev/null
aws "${ep[@]}" s3 cp "s3://$b/big.bin" "s3://$b/big2.bin"
aws "${ep[@]}" s3 rm --recursive "s3://$b/"
aws "${ep[@]}" s3 rb "s3://$b"
echo "awscli smoke: ok"
